/* test-analysis.c — the worked examples of ../shared/METHODS.md reproduced
 * by the analysis library, plus invariants and brute-force cross-checks on
 * seeded random traces.  Expected numbers are copied from METHODS.md (and,
 * where METHODS.md rounds to 10 digits, from the full-precision output of
 * ../shared/methods_examples.py that generated them). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "mtest.h"

#define TOL 1e-12
static int near(double a, double b, double tol) { return fabs(a - b) <= tol; }

/* xorshift64*: explicit seed, no global state */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ULL;
}

/* k distinct ids in 0..E-1, skewed so some experts are hot */
static void rand_set(uint64_t *s, int E, int k, int32_t *out)
{
    for (int i = 0; i < k; i++) {
        for (;;) {
            uint64_t r = rng_next(s);
            int e = (int)((r >> 11) % (uint64_t)E);
            if ((r & 3) == 0) e = e % 4;   /* hot experts 0..3 */
            int dup = 0;
            for (int j = 0; j < i; j++) dup |= out[j] == e;
            if (!dup) { out[i] = e; break; }
        }
    }
}

static void test_load_example(void)
{
    /* §1.5 */
    const int32_t sets[5][2] = {{0, 1}, {0, 2}, {0, 1}, {3, 0}, {1, 0}};
    const float P[5][4] = {{.5f, .3f, .1f, .1f}, {.4f, .1f, .35f, .15f}, {.45f, .35f, .1f, .1f},
                           {.3f, .1f, .1f, .5f}, {.35f, .4f, .15f, .1f}};
    MsLoadAcc *a = ms_load_acc_new(4, 2);
    ms_load_acc_begin_seq(a);
    for (int t = 0; t < 5; t++) ms_load_acc_add(a, sets[t], 2);
    MsLoadStats s;
    ms_load_acc_stats(a, &s);
    const int64_t c[4] = {5, 3, 1, 1};
    const double f[4] = {0.5, 0.3, 0.1, 0.1};
    int ok = 1;
    for (int e = 0; e < 4; e++) ok &= s.counts[e] == c[e] && near(s.share[e], f[e], TOL);
    MT_CHECK(ok, "§1.5 counts [5,3,1,1], load fraction [.5,.3,.1,.1]");
    MT_CHECK(near(s.cv, 0.6633249580710799, TOL), "§1.5 CV = 0.6633249581 (%.15g)", s.cv);
    MT_CHECK(near(s.max_over_mean, 2.0, TOL) && near(s.maxvio, 1.0, TOL), "§1.5 max/mean 2, MaxVio 1");
    MT_CHECK(near(s.entropy, 1.1682824501765625, TOL), "§1.5 H = 1.1682824502 nats");
    MT_CHECK(near(s.entropy_norm, 0.8427376486136672, TOL), "§1.5 H/ln4 = 0.8427376486");
    MT_CHECK(near(s.exp_entropy, 3.216463455324144, TOL), "§1.5 exp(H) = 3.2164634553");
    MT_CHECK(near(s.kl_uniform, 0.21801191094332806, TOL), "§1.5 KL(f||U) = 0.2180119109");
    MT_CHECK(near(s.gini, 0.35, TOL), "§1.5 Gini = 0.35 (%.15g)", s.gini);
    MT_CHECK(near(s.jaccard_mean, 1.0 / 3.0, TOL) && s.n_jaccard_pairs == 4, "§1.5 adjacent Jaccard 1/3");
    MT_CHECK(s.n_dead == 0 && s.n_tokens == 5 && s.n_selections == 10, "§1.5 no dead experts, 5 tokens");
    MT_CHECK(near(s.coverage[0], 0.5, TOL) && near(s.coverage[3], 1.0, TOL), "coverage curve ends at 1");
    for (int t = 0; t < 5; t++) ms_load_acc_add_probs(a, P[t]);
    ms_load_acc_stats(a, &s);
    const double pbar[4] = {0.40, 0.25, 0.16, 0.19}, imp[4] = {2, 1.25, 0.8, 0.95};
    ok = 1;
    /* inputs are float32, so compare at float input precision */
    for (int e = 0; e < 4; e++) ok &= near(s.pbar[e], pbar[e], 1e-7) && near(s.importance[e], imp[e], 1e-6);
    MT_CHECK(ok, "§1.5 P̄ = [.40,.25,.16,.19], importance [2,1.25,.8,.95]");
    MT_CHECK(near(s.laux, 2.48, 1e-6), "§1.5 L_aux = 2.48 (%.9g)", s.laux);
    MT_CHECK(near(s.importance_cv2, 0.1368, 1e-6), "§1.5 CV(I)^2 = 0.1368 (%.9g)", s.importance_cv2);
    double hm = (1.168282 + 1.248781 + 1.187283 + 1.168282 + 1.248781) / 5;
    MT_CHECK(near(s.token_entropy_mean, hm, 1e-6), "§1.5 mean per-token entropy (printed to 6 digits)");
    ms_load_acc_free(a);

    const double pd[4] = {.5, .3, .1, .1};
    MT_CHECK(near(ms_entropy_d(pd, 4), 1.1682824501765625, TOL), "ms_entropy of [.5,.3,.1,.1]");
    const float z[4] = {2, 1, 0.5f, -1};
    MT_CHECK(near(ms_zloss_term(z, 4), 6.225932704535335, TOL), "§1.5 z-loss term 6.2259327045");

    /* μ = 0: NaN, not 0 (§1.3) */
    MsLoadAcc *b = ms_load_acc_new(4, 2);
    ms_load_acc_stats(b, &s);
    MT_CHECK(isnan(s.cv) && isnan(s.gini) && isnan(s.entropy_norm) && s.n_dead == 4, "empty layer gives NaN");
    int32_t bad = 4;
    MT_CHECK(ms_load_acc_add(b, &bad, 1) == MS_ERANGE, "expert id >= E rejected");
    ms_load_acc_free(b);
    MsLoadAcc *one = ms_load_acc_new(1, 1);
    int32_t z0 = 0;
    ms_load_acc_add(one, &z0, 1);
    ms_load_acc_stats(one, &s);
    MT_CHECK(isnan(s.entropy_norm), "E = 1: normalised entropy NaN");
    ms_load_acc_free(one);
}

static void test_coact_example(void)
{
    const int32_t sets[5][2] = {{0, 1}, {0, 2}, {0, 1}, {3, 0}, {1, 0}};
    MsCoactAcc *a = ms_coact_acc_new(4);
    for (int t = 0; t < 5; t++) ms_coact_acc_add(a, sets[t], 2);
    double co[16];
    int64_t N[16], M;
    ms_coact_acc_result(a, N, co, NULL, NULL, &M);
    const double row0[4] = {0, 0.6, 0.2, 0.2};
    int ok = M == 5;
    for (int j = 0; j < 4; j++) ok &= near(co[j], row0[j], TOL);
    for (int i = 1; i < 4; i++)
        for (int j = 0; j < 4; j++) ok &= near(co[i * 4 + j], j == 0 ? 1.0 : 0.0, TOL);
    MT_CHECK(ok, "§1.5 co-activation row 0 [—,.6,.2,.2], rows 1..3 = expert 0 with 1.0");
    MT_CHECK(N[0] == 5 && N[1] == 3 && N[4] == 3, "joint counts N_00 = c_0, N_01 = N_10 = 3");
    ms_coact_acc_free(a);
}

static void test_affinity_example(void)
{
    /* §2.5 top-1 trace */
    const int32_t tr[6][3] = {{0, 1, 2}, {0, 1, 2}, {0, 2, 2}, {1, 0, 1}, {2, 0, 0}, {0, 1, 1}};
    MsAffAcc *p01 = ms_aff_acc_new(3), *p12 = ms_aff_acc_new(3), *p02 = ms_aff_acc_new(3);
    for (int t = 0; t < 6; t++) {
        ms_aff_acc_add(p01, &tr[t][0], NULL, 1, &tr[t][1], NULL, 1);
        ms_aff_acc_add(p12, &tr[t][1], NULL, 1, &tr[t][2], NULL, 1);
        ms_aff_acc_add(p02, &tr[t][0], NULL, 1, &tr[t][2], NULL, 1);
    }
    MsAffResult r;
    ms_aff_acc_result(p01, MS_AFF_TOP1, &r);
    const double C01[9] = {0, 3, 1, 1, 0, 0, 1, 0, 0}, P01[9] = {0, .75, .25, 1, 0, 0, 1, 0, 0};
    int ok = 1;
    for (int i = 0; i < 9; i++) ok &= near(r.C[i], C01[i], TOL) && near(r.Q[i], P01[i], TOL);
    MT_CHECK(ok, "§2.5 layer 0→1 counts and P(j|i)");
    MT_CHECK(near(r.concentration, 0.8333333333333333, TOL), "§2.5 concentration 0→1 = 0.8333333333");
    ms_aff_acc_result(p12, MS_AFF_TOP1, &r);
    const double C12[9] = {1, 1, 0, 0, 1, 2, 0, 0, 1}, P12[9] = {.5, .5, 0, 0, 1.0 / 3, 2.0 / 3, 0, 0, 1};
    ok = 1;
    for (int i = 0; i < 9; i++) ok &= near(r.C[i], C12[i], TOL) && near(r.Q[i], P12[i], TOL);
    MT_CHECK(ok, "§2.5 layer 1→2 counts and P(j|i)");
    MT_CHECK(near(r.concentration, 0.6666666666666666, TOL), "§2.5 concentration 1→2 = 0.6666666667");
    ms_aff_acc_result(p02, MS_AFF_TOP1, &r);
    const double C02[9] = {0, 1, 3, 0, 1, 0, 1, 0, 0};
    ok = 1;
    for (int i = 0; i < 9; i++) ok &= near(r.C[i], C02[i], TOL);
    MT_CHECK(ok, "§2.5 distance-2 counts");
    /* top-1 trace through the top-k membership path: same counts */
    ms_aff_acc_result(p02, MS_AFF_TOPK, &r);
    ok = 1;
    for (int i = 0; i < 9; i++) ok &= near(r.C[i], C02[i], TOL);
    MT_CHECK(ok, "top-k (GEMM) path equals top-1 path when k = 1");
    ms_aff_acc_free(p01);
    ms_aff_acc_free(p12);
    ms_aff_acc_free(p02);

    /* placement cost */
    const int32_t place[9] = {0, 0, 1, 0, 0, 1, 0, 0, 1};
    int cost = 0, xg = 0, xn = 0;
    for (int t = 0; t < 6; t++) cost += ms_placement_cost(tr[t], 3, 3, place, 2, &xg, &xn);
    MT_CHECK(near(cost / 6.0, 0.6666666666666666, TOL) && near(xg / 12.0, 1.0 / 3, TOL) && xn == 0,
             "§2.5 placement: mean cost 0.6666666667, cross-GPU 1/3");

    /* top-2 membership */
    const int32_t Sl[3][2] = {{0, 1}, {0, 2}, {1, 2}}, Sn[3][2] = {{1, 2}, {1, 0}, {2, 0}};
    MsAffAcc *k2 = ms_aff_acc_new(3);
    for (int t = 0; t < 3; t++) ms_aff_acc_add(k2, Sl[t], NULL, 2, Sn[t], NULL, 2);
    ms_aff_acc_result(k2, MS_AFF_TOPK, &r);
    const double Ck[9] = {1, 2, 1, 1, 1, 2, 2, 1, 1};
    const double Pk[9] = {.5, 1, .5, .5, .5, 1, 1, .5, .5};
    const double Qk[9] = {.25, .5, .25, .25, .25, .5, .5, .25, .25};
    ok = 1;
    for (int i = 0; i < 9; i++)
        ok &= near(r.C[i], Ck[i], TOL) && near(r.P[i], Pk[i], TOL) && near(r.Q[i], Qk[i], TOL);
    for (int i = 0; i < 3; i++) ok &= near(r.n[i], 2, TOL);
    MT_CHECK(ok, "§2.5 top-2 membership C, n = [2,2,2], P (rows sum to 2), Q");
    ms_aff_acc_free(k2);
}

static void test_srp_example(void)
{
    /* §3.1: m = 2, T = 6, two experts */
    const int a0[6] = {1, 1, 0, 0, 1, 1}, a1[6] = {0, 0, 1, 0, 0, 0};
    int32_t ids[6][2];
    int n[6];
    for (int t = 0; t < 6; t++) {
        n[t] = 0;
        if (a0[t]) ids[t][n[t]++] = 0;
        if (a1[t]) ids[t][n[t]++] = 1;
    }
    int64_t h[2 * 3] = {0};
    MT_CHECK(ms_srp_hist_add(h, 2, 2, &ids[0][0], n, 2, 6) == 0, "SRP histogram");
    MT_CHECK(h[0] == 1 && h[1] == 2 && h[2] == 2 && h[3] == 3 && h[4] == 2 && h[5] == 0,
             "§3.1 h0 = [1,2,2], h1 = [3,2,0]");
    MsSrp s0 = ms_srp_from_hist(h, 2), s1 = ms_srp_from_hist(h + 3, 2);
    MT_CHECK(near(s0.srp, 0.8571428571428571, TOL) && s0.alpha == 1 && near(s0.rho, 1.3333333333333333, TOL),
             "§3.1 expert 0: SRP 0.8571428571, α* = 1, ρ̂ = 1.3333333333");
    MT_CHECK(near(s1.srp, 0.6666666666666666, TOL) && s1.alpha == 1 && near(s1.rho, 2.0, TOL),
             "§3.1 expert 1: SRP 0.6666666667, ρ̂ = 2");
    int64_t hl[3] = {h[0] + h[3], h[1] + h[4], h[2] + h[5]};
    MsSrp sl = ms_srp_from_hist(hl, 2);
    MT_CHECK(near(sl.srp, 0.8, TOL) && near(sl.rho, 1.5, TOL) && sl.A == 8, "§3.1 layer (pooled) SRP 0.8, ρ̂ 1.5");
    int64_t hz[3] = {5, 0, 0};
    MsSrp sz = ms_srp_from_hist(hz, 2);
    MT_CHECK(sz.srp == 0 && sz.rho == 0, "never-active expert: SRP 0, ρ̂ 0");
    int64_t hs[3] = {0};
    MT_CHECK(ms_srp_hist_add(hs, 1, 8, &ids[0][0], n, 2, 6) == 0 && hs[0] == 0,
             "T < m adds no windows");
    /* a damaged trace naming expert 0 twice in one token (a fuzz finding:
     * the window count then passed m and indexed past the bins) gives the
     * histogram of the same routing without the repeat */
    int32_t dup[6][2];
    int nd[6];
    for (int t = 0; t < 6; t++) {
        nd[t] = n[t];
        for (int j = 0; j < n[t]; j++) dup[t][j] = ids[t][j];
        if (a0[t] && !a1[t]) dup[t][nd[t]++] = 0;
    }
    int64_t hd[2 * 3] = {0};
    MT_CHECK(ms_srp_hist_add(hd, 2, 2, &dup[0][0], nd, 2, 6) == 0 && !memcmp(hd, h, sizeof h),
             "an expert listed twice at a token counts once");
}

static void test_sch_example(void)
{
    /* §3.2: E = 4, k = 2, m = 2 */
    const int32_t seq[12] = {0, 1, 0, 2, 1, 0, 3, 2, 0, 1, 2, 3};
    const double warm[4] = {1.0 / 12, 7.0 / 12, 10.0 / 12, 1.0};
    const double cold[4] = {0.0, 5.0 / 12, 7.0 / 12, 8.0 / 12};
    MsSchSim *s = ms_sch_sim_new(4);
    for (int C = 1; C <= 4; C++) {
        int64_t req = 0;
        int64_t hw = ms_sch_sim_run(s, seq, 6, 2, 2, C, false, &req);
        int64_t hc = ms_sch_sim_run(s, seq, 6, 2, 2, C, true, NULL);
        MT_CHECK(req == 12 && near((double)hw / req, warm[C - 1], TOL) && near(hc / 12.0, cold[C - 1], TOL),
                 "§3.2 SCH C=%d warm %.10f cold %.10f", C, (double)hw / 12, (double)hc / 12);
    }
    int32_t bad[2] = {0, 9};
    MT_CHECK(ms_sch_sim_run(s, bad, 1, 2, 2, 1, false, NULL) == MS_ERANGE, "SCH rejects id >= universe");
    ms_sch_sim_free(s);
}

static void test_superexperts_example(void)
{
    /* §4.8 */
    const double v[16] = {1.2, 0.8, 1.5, 0.9, 2.0, 600.0, 1.1, 1.3, 1.0, 1.4, 45.0, 1.7, 900, 1, 1, 1};
    int layer[16];
    bool se[16];
    for (int i = 0; i < 16; i++) layer[i] = i / 4;
    MsSeInfo info;
    int n = ms_superexperts(v, layer, 16, 4, 0.75, MS_SE_PAPER, se, &info);
    MT_CHECK(info.layer_cut == 3 && info.n_candidates == 12, "§4.8 round(4·0.75) = 3, 12 candidates");
    MT_CHECK(near(info.p995, 569.475, 1e-9), "§4.8 P99.5 = 569.475 (%.15g)", info.p995);
    MT_CHECK(info.max_div10 == 60, "§4.8 floor(600/10) = 60");
    MT_CHECK(n == 1 && se[5] && !se[10] && !se[12], "§4.8 SE set = {(1,1)}; 45 fails, layer-3 900 ignored");
    MT_CHECK(ms_round_half_even(27 * 0.75) == 20 && ms_round_half_even(48 * 0.75) == 36 &&
             ms_round_half_even(61 * 0.75) == 46 && ms_round_half_even(2.5) == 2,
             "§4.2 Python round: 27→20, 48→36, 61→46, 2.5→2");
    double xs[4] = {4, 1, 3, 2};
    MT_CHECK(near(ms_percentile(xs, 4, 50), 2.5, TOL) && near(ms_percentile(xs, 4, 100), 4, TOL),
             "numpy-style linear percentile");
}

static void test_npmi_rd_example(void)
{
    MT_CHECK(near(ms_npmi(8, 10, 20, 100), 0.5488690815000705, TOL), "§5.5 nPMI = 0.5488690815");
    MT_CHECK(near(ms_npmi(5, 10, 50, 100), 0.0, TOL), "§5.5 independent expert nPMI = 0");
    MT_CHECK(ms_npmi(0, 10, 20, 100) == -1.0 && ms_npmi(100, 100, 100, 100) == 1.0 &&
             isnan(ms_npmi(0, 0, 20, 100)), "§5.1 edge cases −1, 1, NaN");
    MT_CHECK(near(ms_risk_diff(24, 29, 0, 19), 0.8275862068965517, TOL), "§6.7 RD(45,41) = 0.8275862069");
    MT_CHECK(near(ms_risk_diff(2, 29, 18, 19), -0.8784029038112522, TOL), "§6.7 RD(45,20) = −0.8784029038");
    MT_CHECK(isnan(ms_risk_diff(1, 0, 1, 2)), "empty set: RD NaN");
    /* ranking: (45,20) first by |RD| */
    double rd[2 * 4] = {0};
    rd[4 + 1] = 0.8275862068965517;   /* layer 1 expert 1 ~ (45,41) */
    rd[4 + 2] = -0.8784029038112522;  /* layer 1 expert 2 ~ (45,20) */
    rd[0] = 0.1;
    rd[1] = 0.05;
    MsRdPick pos[3], neg[3];
    int gp, gn;
    ms_rd_select(rd, 2, 4, 1, 3, 3, false, pos, &gp, neg, &gn);
    MT_CHECK(gn == 1 && neg[0].layer == 1 && neg[0].expert == 2, "RD: deactivate the negative expert");
    MT_CHECK(gp == 2 && pos[0].layer == 1 && pos[0].expert == 1 && pos[1].layer == 0 && pos[1].expert == 0,
             "RD: activation capped at k = 1 per layer, |RD| order");
    ms_rd_select(rd, 2, 4, 2, 3, 3, true, pos, &gp, neg, &gn);
    MT_CHECK(gp == 1 && pos[0].expert == 2 && gn == 3 && neg[0].expert == 1, "RD reverse flips the sign");

    MsNpmiAcc *a = ms_npmi_acc_new(1, 2, 1);
    /* N = 100, class on 10, expert 0 on 20, both on 8 */
    for (int t = 0; t < 100; t++) {
        int cls = 0;
        int32_t id = 0;
        int in_x = t < 10, in_y = (t < 8) || (t >= 10 && t < 22);
        ms_npmi_acc_add(a, 0, &cls, in_x, &id, in_y);
    }
    MT_CHECK(ms_npmi_acc_N(a, 0) == 100 && ms_npmi_acc_nx(a, 0, 0) == 10 && ms_npmi_acc_ny(a, 0, 0) == 20 &&
             ms_npmi_acc_nxy(a, 0, 0, 0) == 8, "nPMI accumulator counts n_x, n_y, n_xy, N");
    ms_npmi_acc_free(a);
}

static void test_paths_example(void)
{
    const double q_en[4] = {.5, .3, .1, .1}, q_l[4] = {.3, .3, .3, .1}, rev[4] = {.1, .1, .3, .5};
    /* METHODS §9.6 says reverse(q_en) makes m uniform; for q_en = [.5,.3,.1,.1]
     * it does not (m = [.3,.2,.2,.3]), so the degenerate check uses a vector
     * whose reverse does: [.4,.3,.2,.1]. */
    const double q4[4] = {.4, .3, .2, .1}, q4r[4] = {.1, .2, .3, .4};
    MT_CHECK(near(ms_jsd(q_en, q_l, 4), 0.03879598414901265, TOL), "§9.6 JSD = 0.0387959841");
    MT_CHECK(near(ms_dhjs(q_en, q_l, 4), 0.26712352478071183, TOL), "§9.6 D_HJS = 0.2671235248");
    MT_CHECK(near(ms_dhjs(q4, q4r, 4), 1.0, TOL), "§9.6 degenerate: m uniform → D_HJS = 1 (%.17g)",
             ms_dhjs(q4, q4r, 4));
    MT_CHECK(ms_dhjs(q_en, rev, 4) < 1.0, "m not uniform → D_HJS < 1");
    const double u[4] = {.25, .25, .25, .25};
    MT_CHECK(isnan(ms_dhjs(u, u, 4)), "both uniform → NaN");

    const double w1[3][4] = {{.5, .3, .1, .1}, {.1, .6, .2, .1}, {.25, .25, .4, .1}};
    const double w2[3][4] = {{.6, .1, .2, .1}, {.1, .3, .5, .1}, {.1, .1, .7, .1}};
    int l1[3][4], l2[3][4], n1[3], n2[3];
    for (int l = 0; l < 3; l++) {
        n1[l] = ms_pathway_layer(w1[l], 4, 0.7, l1[l]);
        n2[l] = ms_pathway_layer(w2[l], 4, 0.7, l2[l]);
    }
    const int *p1[3] = {l1[0], l1[1], l1[2]}, *p2[3] = {l2[0], l2[1], l2[2]};
    char *s1 = ms_pathway_string(p1, n1, 3), *s2 = ms_pathway_string(p2, n2, 3);
    MT_CHECK(strcmp(s1, "0,1-1,2-2,0,1") == 0 && strcmp(s2, "0,2-2,1-2") == 0, "§10.7 pathways %s / %s", s1, s2);
    int c1[64], c2[64];
    int nc1 = (int)strlen(s1), nc2 = (int)strlen(s2);
    for (int i = 0; i < nc1; i++) c1[i] = (unsigned char)s1[i];
    for (int i = 0; i < nc2; i++) c2[i] = (unsigned char)s2[i];
    MT_CHECK(ms_levenshtein(c1, nc1, c2, nc2) == 7, "§10.7 character edit distance 7");
    int t1[32], t2[32];
    int nt1 = ms_pathway_tokens(p1, n1, 3, t1), nt2 = ms_pathway_tokens(p2, n2, 3, t2);
    MT_CHECK(ms_levenshtein(t1, nt1, t2, nt2) == 5, "§10.7 token edit distance 5");
    free(s1);
    free(s2);
    const float V0[8] = {1, 0, 0, 1, 1, 1, -1, 0}, V1[8] = {1, 0, 0, 1, 0, -1, 1, 1},
                V2[8] = {0, 1, 1, 0, 1, -1, 1, 1};
    const float *W[3] = {V0, V1, V2};
    double g[12], Ci, Si;
    for (int l = 0; l < 3; l++)
        for (int e = 0; e < 4; e++) g[l * 4 + e] = w1[l][e];
    ms_pathway_consistency(g, W, 3, 4, 2, &Ci, &Si);
    MT_CHECK(near(Ci, 0.3225293875639752, TOL) && near(Si, 0.5894144698544945, TOL),
             "§10.7 consistency C_i 0.3225293876, S_i 0.5894144699");
}


/* METHODS §3.2 pseudo-code transcribed literally (sets as flag arrays, linear
 * eviction scan) — the reference the heap simulation must match. */
static int64_t naive_sch(const int32_t *seq, int T, int k, int U, int m, int C, int warm)
{
    int *cache = calloc(U, sizeof(int)), *pre = calloc(U, sizeof(int)), *seen = calloc(U, sizeof(int));
    int64_t *fut = calloc(U, sizeof(int64_t)), *last = calloc(U, sizeof(int64_t));
    int64_t ts = 0, hits = 0;
    int ncache = 0, uni = 0;
    for (int t = 0; t < m && t < T; t++)
        for (int j = 0; j < k; j++) fut[seq[t * k + j]]++;
    for (int i = 0; i < T; i++) {
        memcpy(pre, cache, sizeof(int) * U);
        for (int j = 0; j < k; j++) {
            int x = seq[i * k + j];
            if (pre[x]) hits++;
            else if (!seen[x]) {
                if (warm && uni < C) hits++;
                uni++;
                seen[x] = 1;
            }
        }
        for (int j = 0; j < k; j++) {
            int x = seq[i * k + j];
            if (!cache[x]) {
                if (ncache >= C) {
                    int y = -1;
                    for (int z = 0; z < U; z++)
                        if (cache[z] && (y < 0 || fut[z] < fut[y] || (fut[z] == fut[y] && last[z] < last[y]))) y = z;
                    cache[y] = 0;
                    ncache--;
                }
                cache[x] = 1;
                ncache++;
            }
            ts++;
            fut[x]--;
            last[x] = ts;
        }
        if (i + m < T)
            for (int j = 0; j < k; j++) fut[seq[(i + m) * k + j]]++;
    }
    free(cache); free(pre); free(seen); free(fut); free(last);
    return hits;
}

/* the textbook two-row table, reference for the bit-vector distance */
static int dp_lev(const int *a, int na, const int *b, int nb)
{
    int *d = malloc(sizeof(int) * (nb + 1));
    for (int j = 0; j <= nb; j++) d[j] = j;
    for (int i = 1; i <= na; i++) {
        int prev = d[0];
        d[0] = i;
        for (int j = 1; j <= nb; j++) {
            int cur = d[j], v = d[j] + 1;
            if (d[j - 1] + 1 < v) v = d[j - 1] + 1;
            if (prev + (a[i - 1] != b[j - 1]) < v) v = prev + (a[i - 1] != b[j - 1]);
            d[j] = v;
            prev = cur;
        }
    }
    int r = d[nb];
    free(d);
    return r;
}

static void test_levenshtein_random(void)
{
    uint64_t seed = 12345;
    int ok = 1, a[300], b[300];
    for (int it = 0; it < 400 && ok; it++) {
        int na = (int)(rng_next(&seed) % 300), nb = (int)(rng_next(&seed) % 300);
        int alpha = 2 + (int)(rng_next(&seed) % 12);
        for (int i = 0; i < na; i++) a[i] = (int)(rng_next(&seed) % alpha) - 1;
        for (int i = 0; i < nb; i++) b[i] = (int)(rng_next(&seed) % alpha) - 1;
        if (it % 5 == 0 && na > 10) { memcpy(b, a, sizeof(int) * na); nb = na; b[na / 2] = 99; }
        ok &= ms_levenshtein(a, na, b, nb) == dp_lev(a, na, b, nb);
    }
    MT_CHECK(ok, "bit-vector edit distance equals the DP table on 400 random pairs (lengths 0..299)");
}

/* brute-force references on a seeded random trace */
static void test_invariants(void)
{
    enum { E = 16, K = 4, L = 3, T = 5000, M = 4 };
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    int32_t *ids = malloc(sizeof(int32_t) * T * L * K);
    for (int t = 0; t < T; t++)
        for (int l = 0; l < L; l++) {
            int32_t *s = ids + ((size_t)t * L + l) * K;
            /* layer 1 copies layer 0 half the time: planted affinity */
            if (l == 1 && (rng_next(&seed) & 1)) memcpy(s, s - K, sizeof(int32_t) * K);
            else rand_set(&seed, E, K, s);
        }
    MsLoadAcc *la = ms_load_acc_new(E, K);
    MsCoactAcc *ca = ms_coact_acc_new(E);
    MsAffAcc *aa = ms_aff_acc_new(E), *ab = ms_aff_acc_new(E);
    int64_t Nref[E * E] = {0}, Cref[E * E] = {0};
    for (int t = 0; t < T; t++) {
        const int32_t *s0 = ids + (size_t)t * L * K, *s1 = s0 + K;
        ms_load_acc_add(la, s0, K);
        ms_coact_acc_add(ca, s0, K);
        ms_aff_acc_add(aa, s0, NULL, K, s1, NULL, K);
        ms_aff_acc_add(ab, s1, NULL, K, s1 + K, NULL, K);
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++) {
                Nref[s0[i] * E + s0[j]]++;
                Cref[s0[i] * E + s1[j]]++;
            }
    }
    MsLoadStats ls;
    ms_load_acc_stats(la, &ls);
    int64_t sum = 0;
    for (int e = 0; e < E; e++) sum += ls.counts[e];
    MT_CHECK(sum == (int64_t)T * K, "loads sum to tokens × k");
    MT_CHECK(ls.gini >= 0 && ls.gini <= (E - 1.0) / E && ls.entropy_norm > 0 && ls.entropy_norm <= 1,
             "Gini in [0,(E−1)/E], normalised entropy in (0,1]");
    int64_t N[E * E];
    double co[E * E], jac[E * E];
    ms_coact_acc_result(ca, N, co, jac, NULL, NULL);
    int ok = 1, inr = 1;
    for (int i = 0; i < E * E; i++) {
        ok &= N[i] == Nref[i];
        inr &= isnan(co[i]) || (co[i] >= 0 && co[i] <= 1);
        inr &= isnan(jac[i]) || (jac[i] >= 0 && jac[i] <= 1);
    }
    MT_CHECK(ok, "co-activation GEMM (ssyrk, chunked) equals sparse counting");
    MT_CHECK(inr, "co-activation probabilities in [0,1]");
    MsAffResult r;
    ms_aff_acc_result(aa, MS_AFF_TOPK, &r);
    ok = 1;
    int rows = 1;
    for (int i = 0; i < E; i++) {
        double sq = 0, sp = 0;
        for (int j = 0; j < E; j++) {
            ok &= r.C[i * E + j] == (double)Cref[i * E + j];
            sq += r.Q[i * E + j];
            sp += r.P[i * E + j];
            rows &= r.P[i * E + j] >= 0 && r.P[i * E + j] <= 1;
        }
        rows &= near(sq, 1, 1e-12) && near(sp, K, 1e-12);
    }
    MT_CHECK(ok, "affinity GEMM (sgemm, chunked) equals sparse counting");
    MT_CHECK(rows, "affinity rows: Q sums to 1, P sums to k, P in [0,1]");
    double planted = r.concentration, diag = 0;
    for (int i = 0; i < E; i++) diag += r.P[i * E + i] / E;
    ms_aff_acc_result(ab, MS_AFF_TOPK, &r);
    MT_CHECK(planted > r.concentration + 0.05 && diag >= 0.5,
             "planted copy 0→1: concentration %.3f > independent 1→2 %.3f, mean P(i|i) %.3f >= 0.5",
             planted, r.concentration, diag);
    ms_aff_acc_free(ab);

    /* SRP histogram vs naive windows, several m; SCH monotone in C */
    int nsel[T];
    for (int t = 0; t < T; t++) nsel[t] = K;
    const int ms[3] = {1, 4, 16};
    ok = 1;
    for (int mi = 0; mi < 3; mi++) {
        int m = ms[mi];
        int64_t *h = calloc((size_t)E * (m + 1), sizeof *h), *hr = calloc((size_t)E * (m + 1), sizeof *hr);
        /* sequences of 250 tokens, layer 0 */
        for (int s0 = 0; s0 < T; s0 += 250) {
            ms_srp_hist_add(h, E, m, ids + (size_t)s0 * L * K, nsel, L * K, 250);
            for (int e = 0; e < E; e++)
                for (int p = 0; p + m <= 250; p++) {
                    int f = 0;
                    for (int t = p; t < p + m; t++)
                        for (int j = 0; j < K; j++) f += ids[((size_t)(s0 + t) * L) * K + j] == e;
                    hr[e * (m + 1) + f]++;
                }
        }
        ok &= memcmp(h, hr, sizeof *h * E * (m + 1)) == 0;
        free(h);
        free(hr);
    }
    MT_CHECK(ok, "SRP event-driven histograms equal naive window sums (m = 1, 4, 16)");
    int32_t *seq = malloc(sizeof(int32_t) * 400 * K);
    for (int t = 0; t < 400; t++) memcpy(seq + t * K, ids + (size_t)t * L * K, sizeof(int32_t) * K);
    MsSchSim *sim = ms_sch_sim_new(E);
    int mono = 1, full = 1;
    for (int m = 1; m <= 64; m *= 4)
        for (int cold = 0; cold < 2; cold++) {
            int64_t prev = -1;
            for (int C = 1; C <= E; C++) {
                int64_t h = ms_sch_sim_run(sim, seq, 400, K, m, C, cold, NULL);
                mono &= h >= prev;
                prev = h;
                if (C == E && !cold) full &= h == 400 * K;
            }
        }
    int same = 1;
    for (int m = 1; m <= 64; m *= 4)
        for (int C = 1; C <= E; C += 3)
            for (int warm = 0; warm < 2; warm++)
                same &= ms_sch_sim_run(sim, seq, 400, K, m, C, !warm, NULL) == naive_sch(seq, 400, K, E, m, C, warm);
    MT_CHECK(same, "SCH heap simulation equals the literal §3.2 pseudo-code on a random trace");
    /* caches above the flat-scan limit (512) take the heap path: a sticky
     * stream over 1024 ids, so caches of 500..560 do evict */
    enum { TB = 1500, UB = 1024 };
    int32_t *seqb = malloc(sizeof(int32_t) * TB * K);
    uint64_t st = 0x9e3779b97f4a7c15ull;
    for (int t = 0; t < TB; t++)
        for (int j = 0; j < K; j++) {
            st = st * 6364136223846793005ull + 1442695040888963407ull;
            int x = (int)((st >> 33) % UB);
            /* reuse a recent id most of the time, distinct within a token */
            if (t > 0 && (st >> 20) % 4 != 0) x = (seqb[(t - 1 - (int)((st >> 12) % (t < 40 ? t : 40))) * K + j] + j) % UB;
            for (int q = 0; q < j; q++)
                if (seqb[t * K + q] == x) { x = (x + 1) % UB; q = -1; }
            seqb[t * K + j] = x;
        }
    MsSchSim *simb = ms_sch_sim_new(UB);
    int sameb = 1;
    for (int m = 1; m <= 64; m *= 8)
        for (int C = 500; C <= 560; C += 12)
            for (int warm = 0; warm < 2; warm++)
                sameb &= ms_sch_sim_run(simb, seqb, TB, K, m, C, !warm, NULL) ==
                         naive_sch(seqb, TB, K, UB, m, C, warm);
    static const int small_caps[] = {3, 40, 130, 300};
    for (int m = 1; m <= 64; m *= 8)
        for (int c = 0; c < 4; c++)
            for (int warm = 0; warm < 2; warm++)
                sameb &= ms_sch_sim_run(simb, seqb, TB, K, m, small_caps[c], !warm, NULL) ==
                         naive_sch(seqb, TB, K, UB, m, small_caps[c], warm);
    int64_t reqb = 0, hb = ms_sch_sim_run(simb, seqb, TB, K, 4, 560, true, &reqb);
    MT_CHECK(sameb && hb < reqb - 560, "SCH over 1024 ids, caches of 3..560 (flat and heap paths, with evictions) "
                                       "equals the literal pseudo-code");
    /* the bit-mask path of universes <= 64 ids, at its edge (ids up to 63),
     * with repeated ids inside a token */
    MsSchSim *sim64 = ms_sch_sim_new(64);
    int same64 = 1;
    for (int i = 0; i < TB * K; i++) seqb[i] %= 64;
    for (int m = 1; m <= 16; m *= 4)
        for (int C = 1; C <= 64; C += 7)
            for (int warm = 0; warm < 2; warm++)
                same64 &= ms_sch_sim_run(sim64, seqb, TB, K, m, C, !warm, NULL) ==
                          naive_sch(seqb, TB, K, 64, m, C, warm);
    MT_CHECK(same64, "SCH over 64 ids (bit-mask path, repeated ids) equals the literal pseudo-code");
    ms_sch_sim_free(sim64);
    ms_sch_sim_free(simb);
    free(seqb);
    MT_CHECK(mono, "SCH non-decreasing in cache size (warm and cold, m = 1, 4, 16, 64)");
    MT_CHECK(full, "warm SCH = 1 when C covers every expert");
    ms_sch_sim_free(sim);
    free(seq);

    MsNpmiAcc *na = ms_npmi_acc_new(L, E, 3);
    for (int t = 0; t < T; t++)
        for (int l = 0; l < L; l++) {
            int cls = t % 3;
            ms_npmi_acc_add(na, l, &cls, 1, ids + ((size_t)t * L + l) * K, K);
        }
    inr = 1;
    for (int l = 0; l < L; l++)
        for (int c = 0; c < 3; c++)
            for (int e = 0; e < E; e++) {
                double v = ms_npmi(ms_npmi_acc_nxy(na, l, c, e), ms_npmi_acc_nx(na, l, c),
                                   ms_npmi_acc_ny(na, l, e), ms_npmi_acc_N(na, l));
                inr &= isnan(v) || (v >= -1 && v <= 1);
            }
    MT_CHECK(inr, "nPMI in [−1,1]");
    ms_npmi_acc_free(na);
    ms_load_acc_free(la);
    ms_coact_acc_free(ca);
    ms_aff_acc_free(aa);
    free(ids);
}

/* What the analyses read as "the router's distribution" from a stored probs
 * row: softmax routers as stored, sigmoid scores normalised, gpt-oss's
 * stored logits through a softmax whose top-k renormalisation is exactly
 * the softmax over the chosen logits (the applied weights). */
static void test_router_distribution(void)
{
    const float logits[5] = { 2.0f, -1.0f, 0.5f, 3.0f, -4.0f };
    float out[5];
    const float *d = ms_router_distribution("softmax_topk", logits, 5, out);
    double z = 0, sum = 0;
    for (int e = 0; e < 5; e++) z += exp(logits[e]);
    bool ok = d == out;
    for (int e = 0; e < 5; e++) {
        ok &= fabs(d[e] - exp(logits[e]) / z) < 1e-6;
        sum += d[e];
    }
    /* top-2 = experts 3, 0: renormalised they are the softmax of (3, 2) */
    double w3 = d[3] / (d[3] + d[0]);
    MT_CHECK(ok && fabs(sum - 1) < 1e-6 && fabs(w3 - 1.0 / (1.0 + exp(-1.0))) < 1e-6,
             "softmax_topk: logits -> softmax over all experts, consistent with the applied weights");
    const float sig[4] = { 0.5f, 0.25f, 0.25f, 1.0f };
    d = ms_router_distribution("sigmoid", sig, 4, out);
    MT_CHECK(d == out && fabs(d[0] - 0.25) < 1e-7 && fabs(d[3] - 0.5) < 1e-7, "sigmoid scores normalised to sum 1");
    const float sm[3] = { 0.2f, 0.3f, 0.5f };
    MT_CHECK(ms_router_distribution("softmax", sm, 3, out) == sm && ms_router_distribution(NULL, sm, 3, out) == sm,
             "softmax probabilities are used as stored");
}

int main(void)
{
    test_router_distribution();
    test_load_example();
    test_coact_example();
    test_affinity_example();
    test_srp_example();
    test_sch_example();
    test_superexperts_example();
    test_npmi_rd_example();
    test_paths_example();
    test_invariants();
    test_levenshtein_random();
    return mt_done();
}
