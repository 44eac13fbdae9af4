#!/usr/bin/env python3
"""Generate ui/plot-palettes.c: the diverging map and the categorical (expert)
palette, both constructed in OKLab (Ottosson 2020).  Deterministic; run
`python3 tools/gen-palettes.py > ui/plot-palettes.c` after changing it.

Diverging ("balance"): a straight line in OKLab from a near-white neutral centre
(L 0.97, no chroma) to a blue (hue 255 deg) and a red (hue 27 deg) end of equal
lightness (L 0.42).  Lightness and chroma both change linearly with |t - 0.5|, so
equal steps in t are equal perceptual steps and both halves are mirror images
in lightness.  257 entries: entry 128 is exactly the centre.

Categorical: colour i is the candidate farthest, in CIEDE2000, from colours
0..i-1 (greedy farthest-point order, ties to the first candidate), starting from
a mid blue.  Candidates: an OKLab grid with 0.40 <= L <= 0.82 (legible on
white) and 0.07 <= chroma <= 0.22 (not neon), at least 12 CIEDE2000 from white
and from the missing-value grey.  The order is
fixed, so expert e keeps its colour whatever the number of experts, and every
prefix of the palette is as spread out as the greedy order can make it."""
import math

def srgb_to_linear(c):
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

def linear_to_srgb(c):
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055

def oklab_to_linear(L, a, b):
    l_ = L + 0.3963377774 * a + 0.2158037573 * b
    m_ = L - 0.1055613458 * a - 0.0638541728 * b
    s_ = L - 0.0894841775 * a - 1.2914855480 * b
    l, m, s = l_ ** 3, m_ ** 3, s_ ** 3
    return (4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s,
            -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s,
            -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s)

def linear_to_oklab(r, g, b):
    l = 0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b
    m = 0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b
    s = 0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b
    l_, m_, s_ = (math.copysign(abs(v) ** (1 / 3), v) for v in (l, m, s))
    return (0.2104542553 * l_ + 0.7936177850 * m_ - 0.0040720468 * s_,
            1.9779984951 * l_ - 2.4285922050 * m_ + 0.4505937099 * s_,
            0.0259040371 * l_ + 0.7827717662 * m_ - 0.8086757660 * s_)

def in_gamut(lin, eps=1e-6):
    return all(-eps <= c <= 1 + eps for c in lin)

def oklab_to_srgb(L, a, b):
    return tuple(linear_to_srgb(min(1.0, max(0.0, c))) for c in oklab_to_linear(L, a, b))

def lch(L, C, hdeg):
    h = math.radians(hdeg)
    return L, C * math.cos(h), C * math.sin(h)

def max_chroma(L, hdeg):
    lo, hi = 0.0, 0.5
    for _ in range(40):
        mid = (lo + hi) / 2
        if in_gamut(oklab_to_linear(*lch(L, mid, hdeg))):
            lo = mid
        else:
            hi = mid
    return lo

def diverging(n=257, Lc=0.97, Le=0.42, hue_neg=255.0, hue_pos=27.0, frac=0.92):
    ends = {}
    for side, hue in (("neg", hue_neg), ("pos", hue_pos)):
        # largest end chroma whose straight line to the centre stays in gamut
        cmax = max_chroma(Le, hue) * frac
        while True:
            ok = all(in_gamut(oklab_to_linear(*lch(Lc - (Lc - Le) * u / 64, cmax * u / 64, hue)))
                     for u in range(65))
            if ok:
                break
            cmax *= 0.98
        ends[side] = cmax
    out = []
    half = (n - 1) // 2
    for i in range(n):
        s = (i - half) / half
        u = abs(s)
        hue, cend = (hue_neg, ends["neg"]) if s < 0 else (hue_pos, ends["pos"])
        out.append(oklab_to_srgb(*lch(Lc - (Lc - Le) * u, cend * u, hue)))
    # same end chroma on both sides keeps the halves symmetric in saturation too
    return out, ends

def srgb_to_lab(rgb):
    r, g, b = (srgb_to_linear(c) for c in rgb)
    x = (0.4124564 * r + 0.3575761 * g + 0.1804375 * b) / 0.95047
    y = 0.2126729 * r + 0.7151522 * g + 0.0721750 * b
    z = (0.0193339 * r + 0.1191920 * g + 0.9503041 * b) / 1.08883
    e, k = 216 / 24389, 24389 / 27
    f = [v ** (1 / 3) if v > e else (k * v + 16) / 116 for v in (x, y, z)]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])

def de2000(p, q):
    L1, a1, b1 = p
    L2, a2, b2 = q
    c1, c2 = math.hypot(a1, b1), math.hypot(a2, b2)
    cm7 = ((c1 + c2) / 2) ** 7
    g = 0.5 * (1 - math.sqrt(cm7 / (cm7 + 25 ** 7)))
    a1p, a2p = (1 + g) * a1, (1 + g) * a2
    c1p, c2p = math.hypot(a1p, b1), math.hypot(a2p, b2)
    h1 = math.atan2(b1, a1p) % (2 * math.pi) if (a1p or b1) else 0.0
    h2 = math.atan2(b2, a2p) % (2 * math.pi) if (a2p or b2) else 0.0
    dl, dc = L2 - L1, c2p - c1p
    dh = 0.0
    if c1p * c2p:
        dh = h2 - h1
        if dh > math.pi: dh -= 2 * math.pi
        elif dh < -math.pi: dh += 2 * math.pi
    dhh = 2 * math.sqrt(c1p * c2p) * math.sin(dh / 2)
    lm, cmp_ = (L1 + L2) / 2, (c1p + c2p) / 2
    hm = h1 + h2
    if c1p * c2p:
        if abs(h1 - h2) <= math.pi: hm = (h1 + h2) / 2
        elif h1 + h2 < 2 * math.pi: hm = (h1 + h2 + 2 * math.pi) / 2
        else: hm = (h1 + h2 - 2 * math.pi) / 2
    t = (1 - 0.17 * math.cos(hm - math.pi / 6) + 0.24 * math.cos(2 * hm)
         + 0.32 * math.cos(3 * hm + math.pi / 30) - 0.20 * math.cos(4 * hm - 63 * math.pi / 180))
    dtheta = math.radians(30) * math.exp(-((math.degrees(hm) - 275) / 25) ** 2)
    c7 = cmp_ ** 7
    rc = 2 * math.sqrt(c7 / (c7 + 25 ** 7))
    sl = 1 + 0.015 * (lm - 50) ** 2 / math.sqrt(20 + (lm - 50) ** 2)
    sc, sh = 1 + 0.045 * cmp_, 1 + 0.015 * cmp_ * t
    rt = -math.sin(2 * dtheta) * rc
    xl, xc, xh = dl / sl, dc / sc, dhh / sh
    return math.sqrt(xl * xl + xc * xc + xh * xh + rt * xc * xh)

MISSING_GREY = (0.80, 0.80, 0.80)

def categorical(n=256):
    """Greedy farthest-point order under CIEDE2000 over an OKLab grid."""
    white, grey = srgb_to_lab((1, 1, 1)), srgb_to_lab(MISSING_GREY)
    cands = []
    for li in range(22):
        L = 0.40 + 0.02 * li
        for ai in range(-25, 26):
            for bi in range(-25, 26):
                a, b = 0.012 * ai, 0.012 * bi
                if not (0.07 <= math.hypot(a, b) <= 0.22):
                    continue
                lin = oklab_to_linear(L, a, b)
                if not in_gamut(lin):
                    continue
                lab = srgb_to_lab(oklab_to_srgb(L, a, b))
                if de2000(lab, white) < 12 or de2000(lab, grey) < 12:
                    continue
                cands.append((oklab_to_srgb(L, a, b), lab))
    seed_rgb = (0.12, 0.47, 0.71)
    chosen = [seed_rgb]
    seed = srgb_to_lab(seed_rgb)
    dmin = [de2000(lab, seed) for _, lab in cands]
    while len(chosen) < n:
        j = max(range(len(cands)), key=lambda k: (dmin[k], -k))
        rgb, lab = cands[j]
        chosen.append(rgb)
        for k, (_, l2) in enumerate(cands):
            if dmin[k] > 0:
                d = de2000(l2, lab)
                if d < dmin[k]:
                    dmin[k] = d
    return chosen

def emit(name, rows, comment):
    print(f"/* {comment} */")
    print(f"const float {name}[{len(rows)}][3] = {{")
    for r in rows:
        print("    {%.6f, %.6f, %.6f}," % r)
    print("};\n")

if __name__ == "__main__":
    div, ends = diverging()
    cat = categorical()
    print("/* plot-palettes.c — generated by tools/gen-palettes.py; do not edit.\n"
          " * sRGB components in [0,1]. */")
    print('#include "plot-internal.h"\n')
    emit("ms_plot_balance_data", div,
         "diverging blue-white-red, OKLab straight lines; end chroma %.4f (blue), %.4f (red)"
         % (ends["neg"], ends["pos"]))
    emit("ms_plot_category_data", cat, "categorical palette, greedy farthest-point order (CIEDE2000)")
