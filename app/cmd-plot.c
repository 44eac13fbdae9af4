/* cmd-plot.c — `moescope plot VIEW --db DB -o FILE`: prepare a view from the
 * trace database and render it to PNG, SVG or PDF (ui/views/ms-view.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli-util.h"
#include "commands.h"
#include "ms-view.h"
#include "results.h"

static void plot_help(void)
{
    fputs("usage: moescope plot VIEW --db DB -o FILE.png|svg|pdf [--run R] [--prompt P] [--layer L]\n"
          "                     [--layers A-B] [--color-by expert|entropy|weight|hidden|lift|jaccard]\n"
          "                     [--order id|load|cluster] [--classes SCHEME] [--top N]\n"
          "                     [--baseline R] [--sweep ID] [--width W --height H] [--scale S]\n"
          "                     [--title T] [--no-run]\n"
          "\n"
          "Draw one view of a trace database as a figure; the format follows the file\n"
          "extension.  The figure is written to a temporary file and renamed, so a\n"
          "failure leaves nothing behind.  A view whose analysis is not in the database\n"
          "computes it from the trace (with --no-run it says which command to run).\n"
          "The same drawing code paints the workbench's widgets.  Figures: docs/figures.md.\n"
          "\n"
          "views:\n", stdout);
    for (const MsViewClass *const *v = ms_view_all(); *v; v++) printf("  %-13s %s\n", (*v)->name, (*v)->summary);
    fputs("\n"
          "  --run R        the run (default: the newest with prompts)\n"
          "  --prompt P     prompt index for tokens, heatmap and compare (default 0)\n"
          "  --layer L      block index for views of one layer (default: the view's)\n"
          "  --layers A-B   only these blocks (inclusive)\n"
          "  --color-by C   heatmap / tokens colouring (default: top-1 expert);\n"
          "                 coactivation: lift (default) or jaccard; affinity: lift\n"
          "  --order O      matrix rows and columns: id (default), load, or cluster\n"
          "  --classes S    npmi: the class scheme when the analysis is computed (default text)\n"
          "  --top N        strongest paths / flows / classes shown\n"
          "  --baseline R   compare: the baseline run (default: the run's parent)\n"
          "  --sweep ID     sweep: which sweep (default: the newest)\n"
          "  --width W, --height H  figure size in pixels (PNG) or points (SVG, PDF)\n"
          "  --scale S      device scale (PNG pixels per unit, default 1; 2 for print)\n"
          "  --title T      the figure's title\n"
          "  --no-run       fail instead of computing a missing analysis\n",
          stdout);
}

static int parse_range(const char *cmd, const char *s, int *lo, int *hi)
{
    char *e;
    long a = strtol(s, &e, 10), b = a;
    if (e != s && *e == '-') {
        const char *q = e + 1;
        b = strtol(q, &e, 10);
        if (e == q) e = (char *)q - 1;
    }
    if (e == s || *e || a < 0 || b < a || b > 255)
        return ms_cli_usage(cmd, "--layers: '%s' is not a block range A-B (0 <= A <= B <= 255)", s);
    *lo = (int)a;
    *hi = (int)b;
    return 0;
}

int ms_cmd_plot(int argc, char **argv)
{
    const char *cmd = "plot", *dbpath = NULL, *out = NULL, *layers = NULL, *color = NULL, *title = NULL;
    bool no_run = false;
    float w = 0, h = 0, scale = 1;
    MsViewParams p;
    ms_view_params_init(&p);
    MsCliCommon c = { .groups = 0 };
    const MsCliOpt opts[] = {
        { "--db", NULL, MS_OPT_STR, &dbpath, 0, 0 },
        { "--out", "-o", MS_OPT_STR, &out, 0, 0 },
        { "--run", NULL, MS_OPT_I64, &p.run, 1, 2147483647.0 },
        { "--baseline", NULL, MS_OPT_I64, &p.baseline, 1, 2147483647.0 },
        { "--sweep", NULL, MS_OPT_I64, &p.sweep, 1, 2147483647.0 },
        { "--prompt", NULL, MS_OPT_INT, &p.prompt, 0, 1 << 30 },
        { "--layer", NULL, MS_OPT_INT, &p.layer, 0, 255 },
        { "--layers", NULL, MS_OPT_STR, &layers, 0, 0 },
        { "--color-by", NULL, MS_OPT_STR, &color, 0, 0 },
        { "--order", NULL, MS_OPT_STR, &p.order, 0, 0 },
        { "--classes", NULL, MS_OPT_STR, &p.classes, 0, 0 },
        { "--top", NULL, MS_OPT_INT, &p.top, 1, 100000 },
        { "--width", NULL, MS_OPT_FLOAT, &w, 16, 20000 },
        { "--height", NULL, MS_OPT_FLOAT, &h, 16, 20000 },
        { "--scale", NULL, MS_OPT_FLOAT, &scale, 0.1, 16 },
        { "--title", NULL, MS_OPT_STR, &title, 0, 0 },
        { "--no-run", NULL, MS_OPT_FLAG, &no_run, 0, 0 },
        { 0 },
    };
    /* VIEW is the first argument */
    if (argc >= 2 && ms_cli_is_help(argv[1])) {
        plot_help();
        return 0;
    }
    if (argc < 2 || argv[1][0] == '-') return ms_cli_usage(cmd, "missing VIEW");
    const MsViewClass *v = ms_view_find(argv[1]);
    if (!v) return ms_cli_usage(cmd, "unknown view '%s'", argv[1]);
    int rc = ms_cli_parse(cmd, argc - 1, argv + 1, opts, &c, "");
    if (rc == MS_CLI_HELP) {
        plot_help();
        return 0;
    }
    if (!rc && (!dbpath || !out)) rc = ms_cli_usage(cmd, "--db DB and -o FILE are required");
    if (!rc && layers) rc = parse_range(cmd, layers, &p.layer_lo, &p.layer_hi);
    MsError cerr = { 0 };
    if (!rc && color && (int)(p.color_by = ms_view_color_from_name(color)) < 0)
        rc = ms_cli_usage(cmd, "--color-by must be expert, entropy, weight, hidden, lift or jaccard (got '%s')",
                          color);
    else if (!rc && color && ms_view_color_check(v, p.color_by, &cerr) < 0)
        rc = ms_cli_usage(cmd, "%s", cerr.msg);
    if (!rc && p.order && strcmp(p.order, "id") && strcmp(p.order, "load") && strcmp(p.order, "cluster"))
        rc = ms_cli_usage(cmd, "--order must be id, load or cluster (got '%s')", p.order);
    MsError err = { 0 };
    MsNpmiBy by;
    const char *label;
    int bucket;
    if (!rc && p.classes && ms_npmi_parse_by(p.classes, &by, &label, &bucket, &err) < 0)
        rc = ms_cli_usage(cmd, "--classes: '%s' is not text, token, label:NAME or pos[:B] with B >= 1", p.classes);
    if (!rc && ms_plot_format_from_path(out, &err) < 0) rc = ms_cli_usage(cmd, "%s", err.msg);
    if (rc) return ms_cli_exit(rc);
    p.run_missing = !no_run;
    MsTraceDb *db = ms_trace_open(dbpath, MS_TRACE_READ, &err);
    if (!db) return ms_cli_fail_err(cmd, &err);
    void *model = NULL;
    int64_t run = 0;
    int nl = 0, nmoe = 0;
    /* a block range past the run's last block would draw fewer blocks than asked for */
    const int lr = layers ? ms_cli_run_layers(db, p.run, &run, &nl, &nmoe, &err) : 1;
    if (lr == 0 && nl > 0 && p.layer_hi >= nl) {
        rc = ms_cli_fail(cmd, "%s: run %lld: --layers %s reaches past its last block (blocks 0..%d)", dbpath,
                         (long long)run, layers, nl - 1);
    } else if (lr < 0) {
        rc = ms_cli_fail_err(cmd, &err);
    } else if (v->prepare(db, &p, &model, &err) < 0) {
        rc = ms_cli_fail_err(cmd, &err);
    } else {
        double dw = 1200, dh = 800;
        if (v->default_size) v->default_size(model, &dw, &dh);
        MsViewState s;
        ms_view_state_init(&s);
        s.title = title;
        s.color_by = p.color_by;
        if (ms_view_render_file(v, model, &s, out, w > 0 ? w : dw, h > 0 ? h : dh, scale, &err) < 0)
            rc = ms_cli_fail_err(cmd, &err);
    }
    if (model) v->free_model(model);
    ms_trace_close(db);
    return rc;
}
