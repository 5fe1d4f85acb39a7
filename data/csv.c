/* data/csv.c: numeric CSV files. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

/* data/file.c */
int tg_file_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len, tg_status *st);

#define CSV_MAX_BYTES ((uint64_t)1 << 31)
/* Class labels are 0..CSV_MAX_CLASS (a confusion matrix stays small). */
#define CSV_MAX_CLASS 9999
/* The smallest magnitude that rounds to infinity as an f32: FLT_MAX and half an ulp. */
#define F32_INF_FROM (0x1p128 - 0x1p103)

/* What a field is. */
enum { NUM_OK, NUM_NOT, NUM_NONFINITE, NUM_HUGE };

/* Parses one field [s, e) (spaces and tabs around it ignored) as a number, as strtod reads
 * it; NUM_OK with *v, or why not: not a number, "inf"/"nan", or beyond f64's range. Values
 * too small for f64 become 0 or subnormal (strtod's underflow) and are numbers. */
static int number(const char *s, const char *e, double *v)
{
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t')) e--;
    if (s == e || e - s > 127) return NUM_NOT;
    char tmp[128];
    memcpy(tmp, s, (size_t)(e - s));
    tmp[e - s] = '\0';
    char *end;
    errno = 0;
    *v = strtod(tmp, &end);
    if (*end != '\0') return NUM_NOT;
    if (errno == ERANGE && fabs(*v) > 1) return NUM_HUGE;
    return isfinite(*v) ? NUM_OK : NUM_NONFINITE;
}

/* Counts the fields of the line [s, e). */
static int64_t fields(const char *s, const char *e, char delim)
{
    int64_t n = 1;
    for (const char *p = s; p < e; p++) n += *p == delim;
    return n;
}

static bool blank(const char *s, const char *e)
{
    for (; s < e; s++)
        if (*s != ' ' && *s != '\t') return false;
    return true;
}

/* True if no field of [s, e) is a number: a header. A line mixing numbers and text is taken
 * as data, so a typo in the first row is reported rather than silently dropped. */
static bool text_line(const char *s, const char *e, char delim)
{
    for (const char *p = s;;) {
        const char *q = memchr(p, delim, (size_t)(e - p));
        double v;
        if (number(p, q ? q : e, &v) != NUM_NOT) return false;
        if (!q) return true;
        p = q + 1;
    }
}

/* The delimiters allowed: a space, a tab or ASCII punctuation that no number, quoted field or
 * line end contains: not a letter or digit (1e5, inf, nan, 0x1p3), . + - _ ( ) (nan(1)),
 * quotes, CR, LF or another control character. */
static bool good_delim(char c)
{
    unsigned char u = (unsigned char)c;
    if (u == ' ' || u == '\t') return true;
    return u < 0x80 && ispunct(u) && !strchr(".+-_()\"'", c);
}

/* The bytes [p, q) for a message, at most 40, other than printable ASCII as \xNN. */
static const char *shown(const char *p, const char *q, char *out, size_t size)
{
    size_t k = 0;
    for (int n = 0; p < q && n < 40 && k + 5 < size; p++, n++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c < 0x7f) out[k++] = (char)c;
        else k += (size_t)snprintf(out + k, size - k, "\\x%02x", c);
    }
    if (p < q && k + 4 < size) memcpy(out + k, "...", 3), k += 3;
    out[k] = '\0';
    return out;
}

/* The end of the line that starts at s: LF, CRLF and CR alone all end a line. */
static const char *line_end(const char *s) { return s + strcspn(s, "\r\n"); }

/* The start of the next line, e being a line's end. */
static const char *next_line(const char *e)
{
    if (*e == '\r' && e[1] == '\n') return e + 2;
    return *e ? e + 1 : e;
}

/* The state of a load: the options, and the rows read so far. */
typedef struct csv_scan {
    const char *path;
    tg_dtype dt;
    tg_csv_opts o;
    tg_status *st;
    double *vals; /* every field, row-major, cols per row */
    size_t n_vals, cap;
    int64_t cols, rows, line, first_line, label, max_label;
} csv_scan;

/* The arguments of tg_csv_load checked: TG_OK, or the error with st filled. */
static int csv_check_args(const char *path, tg_dtype dt, const tg_csv_opts *o,
                          const tg_dataset *out, tg_status *st)
{
    if (!path || !out) return tg_status_set(st, TG_EARG, "tg_csv_load: NULL path or output");
    if (dt != TG_F32 && dt != TG_F64)
        return tg_status_set(st, TG_EDTYPE, "tg_csv_load: %s: bad dtype", path);
    if (o->header < -1 || o->header > 1)
        return tg_status_set(st, TG_EARG, "tg_csv_load: %s: header %d, want -1, 0 or 1", path,
                             o->header);
    if (!good_delim(o->delim)) {
        char d[8];
        return tg_status_set(st, TG_EARG,
                             "tg_csv_load: %s: delimiter '%s' can be part of a "
                             "number, a quoted field or a line end (use a space, a tab or "
                             "punctuation other than . + - _ ( ) \" ')",
                             path, shown(&o->delim, &o->delim + 1, d, sizeof d));
    }
    return TG_OK;
}

/* The whole file as a NUL-terminated text (malloc'd), or NULL with the error in *rc (and
 * st): binary data is refused. */
static char *csv_read_text(const char *path, size_t *len, int *rc, tg_status *st)
{
    unsigned char *bytes = NULL;
    if ((*rc = tg_file_slurp(path, CSV_MAX_BYTES, &bytes, len, st))) return NULL;
    char *text = (char *)bytes;
    const char *nul = memchr(text, '\0', *len);
    if (nul) {
        size_t at = (size_t)(nul - text);
        free(text);
        *rc = tg_status_set(st, TG_EFORMAT,
                            "%s: offset %zu: binary data (a NUL byte) in a CSV "
                            "file",
                            path, at);
        return NULL;
    }
    return text;
}

/* The first line that is not blank, [s, e) with nf fields, fixes the columns and the
 * label's; *header when it is a header line to skip. */
static int csv_first_line(csv_scan *cs, const char *s, const char *e, int64_t nf, bool *header)
{
    cs->cols = nf, cs->first_line = cs->line;
    cs->label = cs->o.label_col < 0 ? cs->cols + cs->o.label_col : cs->o.label_col;
    if (cs->cols < 2) {
        char d[8];
        return tg_status_set(cs->st, TG_EFORMAT,
                             "%s:%lld: one field; need a label and at least "
                             "one feature (delimiter '%s')",
                             cs->path, (long long)cs->line,
                             shown(&cs->o.delim, &cs->o.delim + 1, d, sizeof d));
    }
    if (cs->label < 0 || cs->label >= cs->cols)
        return tg_status_set(cs->st, TG_EARG, "%s: label column %d out of range for %lld columns",
                             cs->path, cs->o.label_col, (long long)cs->cols);
    *header = cs->o.header == 1 || (cs->o.header == -1 && text_line(s, e, cs->o.delim));
    return TG_OK;
}

/* Room in vals for one more row. Each value takes at least two bytes of text, so vals is
 * bounded by the file size. */
static int csv_reserve_row(csv_scan *cs)
{
    size_t need = cs->n_vals + (size_t)cs->cols;
    if (cs->vals && need <= cs->cap) return TG_OK;
    size_t want = cs->cap ? cs->cap * 2 : 1024;
    while (want < need) want *= 2;
    double *nv = realloc(cs->vals, want * sizeof *nv);
    if (!nv) {
        tg_status_set(cs->st, TG_ENOMEM, "%s:%lld: out of memory", cs->path, (long long)cs->line);
        return TG_ENOMEM; /* not 0, whatever the analyser assumes of tg_status_set */
    }
    cs->vals = nv, cs->cap = want;
    return TG_OK;
}

/* Why a field of kind (a NUM_ value) and value v cannot be loaded as dt, or NULL. */
static const char *field_problem(int kind, double v, tg_dtype dt)
{
    return kind == NUM_NOT                           ? "is not a number"
           : kind == NUM_NONFINITE                   ? "is not a finite number"
           : kind == NUM_HUGE                        ? "is beyond f64's range (largest 1.8e308)"
           : dt == TG_F32 && fabs(v) >= F32_INF_FROM ? "is beyond f32's range (largest 3.4e38)"
                                                     : NULL;
}

/* Field c, [p, q) of the line that starts at s, as a number in *v; the label column's must
 * be a class index unless the targets are real-valued. */
static int csv_field(csv_scan *cs, const char *s, const char *p, const char *q, int64_t c,
                     double *v)
{
    const char *f = p, *fe = q; /* the field without the spaces around it */
    while (f < fe && (*f == ' ' || *f == '\t')) f++;
    while (fe > f && (fe[-1] == ' ' || fe[-1] == '\t')) fe--;
    *v = 0;
    int kind = number(p, q, v);
    const char *why = field_problem(kind, *v, cs->dt);
    if (why) {
        char shown_text[200];
        return tg_status_set(cs->st, TG_EFORMAT, "%s:%lld:%lld: field %lld '%s' %s", cs->path,
                             (long long)cs->line, (long long)(f - s) + 1, (long long)c + 1,
                             shown(f, fe, shown_text, sizeof shown_text), why);
    }
    if (c != cs->label || cs->o.regression) return TG_OK;
    if (!(*v >= 0 && *v <= CSV_MAX_CLASS) || *v != floor(*v))
        return tg_status_set(
            cs->st, TG_EFORMAT, "%s:%lld:%lld: label %g is not a class index (an integer 0..%d)",
            cs->path, (long long)cs->line, (long long)(f - s) + 1, *v, CSV_MAX_CLASS);
    if ((int64_t)*v > cs->max_label) cs->max_label = (int64_t)*v;
    return TG_OK;
}

/* The fields of the data line [s, e) appended to vals, each checked. */
static int csv_parse_row(csv_scan *cs, const char *s, const char *e)
{
    int rc = csv_reserve_row(cs);
    const char *p = s;
    for (int64_t c = 0; !rc && c < cs->cols; c++) {
        const char *q = memchr(p, cs->o.delim, (size_t)(e - p));
        if (!q) q = e;
        double v;
        if ((rc = csv_field(cs, s, p, q, c, &v))) break;
        cs->vals[cs->n_vals++] = v;
        p = q + 1;
    }
    return rc;
}

/* One pass over the lines of text: blank ones skipped, a header recognised, every data row
 * into vals, checked as it comes. */
static int csv_scan_lines(csv_scan *cs, const char *text, size_t len)
{
    const char *s = text, *next;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3; /* a UTF-8 byte order mark */
    for (; *s; s = next) {
        const char *e = line_end(s);
        next = next_line(e);
        cs->line++;
        if (blank(s, e)) continue;
        int64_t nf = fields(s, e, cs->o.delim);
        int rc;
        if (!cs->cols) {
            bool header = false;
            if ((rc = csv_first_line(cs, s, e, nf, &header))) return rc;
            if (header) continue;
        } else if (nf != cs->cols) {
            return tg_status_set(cs->st, TG_EFORMAT, "%s:%lld: %lld fields, line %lld has %lld",
                                 cs->path, (long long)cs->line, (long long)nf,
                                 (long long)cs->first_line, (long long)cs->cols);
        }
        if ((rc = csv_parse_row(cs, s, e))) return rc;
        cs->rows++;
    }
    if (cs->rows == 0)
        return tg_status_set(cs->st, TG_EFORMAT, "%s: no data rows%s", cs->path,
                             cs->cols ? " after the header" : "");
    return TG_OK;
}

/* The rows read into out: the label column into y, the others into x. */
static int csv_build(const csv_scan *cs, tg_dataset *out)
{
    int64_t rows = cs->rows, cols = cs->cols;
    int64_t xs[2] = {rows, cols - 1}, ys[2] = {rows, 1};
    tg_tensor *x = tg_tensor_new(cs->dt, 2, xs);
    tg_tensor *y = tg_tensor_new(cs->dt, cs->o.regression ? 2 : 1, ys);
    if (!x || !y) {
        tg_tensor_free(x), tg_tensor_free(y);
        return tg_status_set(cs->st, TG_ENOMEM, "%s: out of memory", cs->path);
    }
    int64_t k = 0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double v = cs->vals[r * cols + c];
            if (c == cs->label) tg_set(y, r, v);
            else tg_set(x, k++, v);
        }
    out->x = x, out->y = y, out->x_bytes = NULL, out->n = rows, out->d = cols - 1;
    out->n_classes = cs->o.regression ? 0 : (int)(cs->max_label + 1);
    return TG_OK;
}

int tg_csv_load(const char *path, tg_dtype dt, const tg_csv_opts *opts, tg_dataset *out,
                tg_status *st)
{
    tg_csv_opts o = opts ? *opts : (tg_csv_opts){-1, -1, false, ','};
    if (!o.delim) o.delim = ',';
    int rc = csv_check_args(path, dt, &o, out, st);
    if (rc) return rc;
    if (st) st->code = TG_OK, st->msg[0] = '\0';
    size_t len = 0;
    char *text = csv_read_text(path, &len, &rc, st);
    if (!text) return rc;
    csv_scan cs = {.path = path, .dt = dt, .o = o, .st = st, .max_label = -1};
    rc = csv_scan_lines(&cs, text, len);
    free(text);
    if (!rc) rc = csv_build(&cs, out);
    free(cs.vals);
    return rc;
}
