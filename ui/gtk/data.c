/* data.c — reference-counted data shared between the window and its worker
 * threads: the loaded model, the prompt set, a prepared view model. */
#include "wb-gtk.h"

static void model_clear(gpointer p)
{
    WbModel *m = p;
    ms_model_free(m->m);
    g_free(m->path);
}

WbModel *wb_model_ref(WbModel *m) { return g_atomic_rc_box_acquire(m); }
void wb_model_unref(WbModel *m)
{
    if (m) g_atomic_rc_box_release_full(m, model_clear);
}

static void set_clear(gpointer p)
{
    WbPromptSet *s = p;
    ms_prompts_free(s->p, s->n);
    g_free(s->name);
}

WbPromptSet *wb_prompt_set_ref(WbPromptSet *s) { return g_atomic_rc_box_acquire(s); }
void wb_prompt_set_unref(WbPromptSet *s)
{
    if (s) g_atomic_rc_box_release_full(s, set_clear);
}

static void vm_clear(gpointer p)
{
    WbViewModel *vm = p;
    if (vm->model) vm->v->free_model(vm->model);
}

WbViewModel *wb_view_model_ref(WbViewModel *vm) { return g_atomic_rc_box_acquire(vm); }
void wb_view_model_unref(WbViewModel *vm)
{
    if (vm) g_atomic_rc_box_release_full(vm, vm_clear);
}
