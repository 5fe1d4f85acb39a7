/* data/csv.c: numeric CSV files. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tapegrad.h"

/* data/file.c */
int tg_file_slurp(const char *path, uint64_t max, unsigned char **out, size_t *len,
                  tg_status *st);

#define CSV_MAX_BYTES ((uint64_t)1 << 31)
#define CSV_MAX_CLASS 9999 /* class labels are 0..CSV_MAX_CLASS (a confusion matrix stays small) */
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
static const char *line_end(const char *s)
{
    return s + strcspn(s, "\r\n");
}

/* The start of the next line, e being a line's end. */
static const char *next_line(const char *e)
{
    if (*e == '\r' && e[1] == '\n') return e + 2;
    return *e ? e + 1 : e;
}

int tg_csv_load(const char *path, tg_dtype dt, const tg_csv_opts *opts, tg_dataset *out,
                tg_status *st)
{
    tg_csv_opts o = opts ? *opts : (tg_csv_opts){-1, -1, false, ','};
    if (!o.delim) o.delim = ',';
    if (!path || !out) return tg_status_set(st, TG_EARG, "tg_csv_load: NULL path or output");
    if (dt != TG_F32 && dt != TG_F64)
        return tg_status_set(st, TG_EDTYPE, "tg_csv_load: %s: bad dtype", path);
    if (o.header < -1 || o.header > 1)
        return tg_status_set(st, TG_EARG, "tg_csv_load: %s: header %d, want -1, 0 or 1", path,
                             o.header);
    if (!good_delim(o.delim)) {
        char d[8];
        return tg_status_set(st, TG_EARG, "tg_csv_load: %s: delimiter '%s' can be part of a "
                             "number, a quoted field or a line end (use a space, a tab or "
                             "punctuation other than . + - _ ( ) \" ')", path,
                             shown(&o.delim, &o.delim + 1, d, sizeof d));
    }
    if (st) st->code = TG_OK, st->msg[0] = '\0';
    unsigned char *bytes = NULL;
    size_t len = 0;
    int rc = tg_file_slurp(path, CSV_MAX_BYTES, &bytes, &len, st);
    if (rc) return rc;
    char *text = (char *)bytes;
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        size_t at = (size_t)(nul - text);
        free(text);
        return tg_status_set(st, TG_EFORMAT, "%s: offset %zu: binary data (a NUL byte) in a CSV "
                             "file", path, at);
    }

    /* One pass: every field into vals (row-major, cols per row), checked as it comes. Each
     * value takes at least two bytes of text, so vals is bounded by the file size. */
    double *vals = NULL;
    size_t n_vals = 0, cap = 0;
    int64_t cols = 0, rows = 0, line = 0, first_line = 0, label = 0, max_label = -1;
    const char *s = text;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3; /* a UTF-8 byte order mark */
    while (!rc && *s) {
        const char *e = line_end(s), *next = next_line(e);
        line++;
        if (blank(s, e)) {
            s = next;
            continue;
        }
        int64_t nf = fields(s, e, o.delim);
        if (!cols) {
            cols = nf, first_line = line;
            label = o.label_col < 0 ? cols + o.label_col : o.label_col;
            if (cols < 2) {
                char d[8];
                rc = tg_status_set(st, TG_EFORMAT, "%s:%lld: one field; need a label and at least "
                                   "one feature (delimiter '%s')", path, (long long)line,
                                   shown(&o.delim, &o.delim + 1, d, sizeof d));
                break;
            }
            if (label < 0 || label >= cols) {
                rc = tg_status_set(st, TG_EARG, "%s: label column %d out of range for %lld columns",
                                   path, o.label_col, (long long)cols);
                break;
            }
            if (o.header == 1 || (o.header == -1 && text_line(s, e, o.delim))) {
                s = next;
                continue;
            }
        } else if (nf != cols) {
            rc = tg_status_set(st, TG_EFORMAT, "%s:%lld: %lld fields, line %lld has %lld", path,
                               (long long)line, (long long)nf, (long long)first_line,
                               (long long)cols);
            break;
        }
        if (n_vals + (size_t)cols > cap) {
            size_t want = cap ? cap * 2 : 1024;
            while (want < n_vals + (size_t)cols) want *= 2;
            double *nv = realloc(vals, want * sizeof *nv);
            if (!nv) {
                rc = tg_status_set(st, TG_ENOMEM, "%s:%lld: out of memory", path, (long long)line);
                break;
            }
            vals = nv, cap = want;
        }
        const char *p = s;
        for (int64_t c = 0; c < cols; c++) {
            const char *q = memchr(p, o.delim, (size_t)(e - p));
            if (!q) q = e;
            const char *f = p, *fe = q; /* the field without the spaces around it */
            while (f < fe && (*f == ' ' || *f == '\t')) f++;
            while (fe > f && (fe[-1] == ' ' || fe[-1] == '\t')) fe--;
            double v = 0;
            int kind = number(p, q, &v);
            const char *why = kind == NUM_NOT         ? "is not a number"
                              : kind == NUM_NONFINITE ? "is not a finite number"
                              : kind == NUM_HUGE      ? "is beyond f64's range (largest 1.8e308)"
                              : dt == TG_F32 && fabs(v) >= F32_INF_FROM
                                  ? "is beyond f32's range (largest 3.4e38)"
                                  : NULL;
            char shown_text[200];
            if (why) {
                rc = tg_status_set(st, TG_EFORMAT, "%s:%lld:%lld: field %lld '%s' %s", path,
                                   (long long)line, (long long)(f - s) + 1, (long long)c + 1,
                                   shown(f, fe, shown_text, sizeof shown_text), why);
                break;
            }
            if (c == label && !o.regression) {
                if (!(v >= 0 && v <= CSV_MAX_CLASS) || v != floor(v)) {
                    rc = tg_status_set(st, TG_EFORMAT,
                                       "%s:%lld:%lld: label %g is not a class index "
                                       "(an integer 0..%d)",
                                       path, (long long)line, (long long)(f - s) + 1, v,
                                       CSV_MAX_CLASS);
                    break;
                }
                if ((int64_t)v > max_label) max_label = (int64_t)v;
            }
            vals[n_vals++] = v;
            p = q + 1;
        }
        rows++;
        s = next;
    }
    free(text);
    if (!rc && rows == 0)
        rc = tg_status_set(st, TG_EFORMAT, "%s: no data rows%s", path,
                           cols ? " after the header" : "");

    tg_tensor *x = NULL, *y = NULL;
    if (!rc) {
        int64_t xs[2] = {rows, cols - 1}, ys[2] = {rows, 1};
        x = tg_tensor_new(dt, 2, xs);
        y = tg_tensor_new(dt, o.regression ? 2 : 1, ys);
        if (!x || !y) rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    }
    if (!rc) {
        int64_t k = 0;
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++) {
                double v = vals[r * cols + c];
                if (c == label) tg_set(y, r, v);
                else tg_set(x, k++, v);
            }
    }
    free(vals);
    if (rc) {
        tg_tensor_free(x), tg_tensor_free(y);
        return rc;
    }
    out->x = x, out->y = y, out->x_bytes = NULL, out->n = rows, out->d = cols - 1;
    out->n_classes = o.regression ? 0 : (int)(max_label + 1);
    return TG_OK;
}
