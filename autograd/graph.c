/* autograd/graph.c: walking the recorded nodes and exporting them as Graphviz DOT. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

int64_t tg_tape_n_nodes(const tg_tape *tp) { return tp ? tp->n_nodes : 0; }
const tg_node *tg_tape_first(const tg_tape *tp) { return tp ? tp->head : NULL; }
const tg_node *tg_node_next(const tg_node *n) { return n ? n->next : NULL; }
const char *tg_node_op(const tg_node *n)
{
    if (!n) return NULL;
    return n->op == TG_OP_custom ? tg_custom_name(n) : tg_op_table[n->op].name;
}
int tg_node_n_inputs(const tg_node *n) { return n ? n->n_in : 0; }
const tg_tensor *tg_node_output(const tg_node *n) { return n ? tg_node_out(n) : NULL; }

const tg_tensor *tg_node_input(const tg_node *n, int i)
{
    return n && i >= 0 && i < n->n_in ? n->in[i] : NULL;
}

bool tg_node_has_grad(const tg_node *n)
{
    return n && tg_node_out(n)->grad && tg_node_out(n)->tape &&
           tg_node_out(n)->grad_sweep == tg_node_out(n)->tape->sweep &&
           tg_node_out(n)->tape->sweep > 0;
}

int tg_export_dot_file(const tg_tape *tp, FILE *f)
{
    char buf[96];
    if (!tp || !f) return TG_EARG;
    fprintf(f, "digraph tape {\n  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n");
    /* A leaf used twice is declared twice: Graphviz merges repeated declarations. */
    for (const tg_node *n = tp->head; n; n = n->next) {
        for (int i = 0; i < n->n_in; i++) {
            const tg_tensor *t = n->in[i];
            if (t->recorded) continue;
            fprintf(f, "  t%p [shape=ellipse, label=\"%s %s%s\"%s];\n", (const void *)t,
                    t->leaf ? "leaf" : "const", tg_shape_str(t, buf, sizeof buf),
                    t->requires_grad ? "\\nrequires grad" : "",
                    t->requires_grad ? ", style=bold" : ", color=gray50");
        }
        fprintf(f, "  t%p [shape=box, label=\"%s\\n%s %s\"%s];\n", (const void *)tg_node_out(n),
                tg_node_op(n), tg_shape_str(tg_node_out(n), buf, sizeof buf),
                tg_dtype_name((tg_dtype)tg_node_out(n)->dtype),
                tg_node_has_grad(n) ? ", style=bold" : "");
    }
    for (const tg_node *n = tp->head; n; n = n->next)
        for (int i = 0; i < n->n_in; i++)
            fprintf(f, "  t%p -> t%p [label=\"%s\"];\n", (const void *)n->in[i],
                    (const void *)tg_node_out(n), tg_shape_str(n->in[i], buf, sizeof buf));
    fprintf(f, "}\n");
    return ferror(f) ? TG_EIO : TG_OK;
}

int tg_export_dot(const tg_tape *tp, const char *path)
{
    if (!tp || !path) return TG_EARG;
    size_t len = strlen(path);
    char *tmp = malloc(len + 16);
    if (!tmp) return TG_ENOMEM;
    snprintf(tmp, len + 16, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) {
        free(tmp);
        return TG_EIO;
    }
    int rc = tg_export_dot_file(tp, f);
    if (fclose(f) != 0 && rc == TG_OK) rc = TG_EIO;
    if (rc == TG_OK && rename(tmp, path) != 0) rc = TG_EIO;
    if (rc != TG_OK) remove(tmp);
    free(tmp);
    return rc;
}
