/* model-info.c — a loaded model's facts (engine.h), apart from the loader
 * in model.c: the trace writer (db/) needs only these, so programs that
 * write traces without loading models (the db and import fuzz programs
 * among them) do not link the loader, and a change to the loader leaves
 * them as they are. */
#include "model-internal.h"

const MsModelInfo *ms_model_info(const MsModel *m) { return &m->info; }

const char *ms_gating_name(MsGating g)
{
    return g == MS_GATING_SOFTMAX ? "softmax" : g == MS_GATING_SIGMOID ? "sigmoid"
         : g == MS_GATING_SOFTMAX_TOPK ? "softmax_topk" : "unknown";
}
const MsTokenizer *ms_model_tokenizer(const MsModel *m) { return m->tok; }
const MsGguf *ms_model_gguf(const MsModel *m) { return m->gguf; }

bool ms_model_layer_is_moe(const MsModel *m, int layer)
{
    if (!m || layer < 0 || layer >= m->info.n_layer) return false;
    return m->layers[layer].moe;
}
