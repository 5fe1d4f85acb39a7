/* data/csv.c: numeric CSV files. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tapegrad.h"

#define CSV_MAX_BYTES ((size_t)1 << 31)
#define CSV_MAX_CLASS 9999 /* class labels are 0..CSV_MAX_CLASS (a confusion matrix stays small) */

/* Parses one field [s, e) as a finite number; false if it is not one. */
static bool number(const char *s, const char *e, double *v)
{
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    if (s == e || e - s > 127) return false;
    char tmp[128];
    memcpy(tmp, s, (size_t)(e - s));
    tmp[e - s] = '\0';
    char *end;
    errno = 0;
    *v = strtod(tmp, &end);
    return *end == '\0' && errno != ERANGE && isfinite(*v);
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
        if (*s != ' ' && *s != '\t' && *s != '\r') return false;
    return true;
}

/* True if no field of [s, e) is a number: a header. A line mixing numbers and text is taken
 * as data, so a typo in the first row is reported rather than silently dropped. */
static bool text_line(const char *s, const char *e, char delim)
{
    for (const char *p = s;;) {
        const char *q = memchr(p, delim, (size_t)(e - p));
        double v;
        if (number(p, q ? q : e, &v)) return false;
        if (!q) return true;
        p = q + 1;
    }
}

/* The whole file, NUL-terminated, in *text (len bytes). */
static int slurp(const char *path, char **text, size_t *len, tg_status *st)
{
    FILE *f = fopen(path, "rb");
    if (!f) return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return tg_status_set(st, TG_EIO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > CSV_MAX_BYTES) {
        fclose(f);
        return tg_status_set(st, TG_EFORMAT, "%s: larger than 2 GiB", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return tg_status_set(st, TG_ENOMEM, "%s: out of memory for %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    fclose(f);
    if (got != n) {
        free(buf);
        return tg_status_set(st, TG_EIO, "%s: read %zu of %zu bytes", path, got, n);
    }
    buf[n] = '\0';
    const char *nul = memchr(buf, '\0', n);
    if (nul) {
        size_t at = (size_t)(nul - buf);
        free(buf);
        return tg_status_set(st, TG_EFORMAT,
                             "%s: offset %zu: binary data (a NUL byte) in a CSV file", path, at);
    }
    *text = buf, *len = n;
    return TG_OK;
}

int tg_csv_load(const char *path, tg_dtype dt, const tg_csv_opts *opts, tg_dataset *out,
                tg_status *st)
{
    tg_csv_opts o = opts ? *opts : (tg_csv_opts){-1, -1, false, ','};
    if (!o.delim) o.delim = ',';
    if (!path || !out) return tg_status_set(st, TG_EARG, "tg_csv_load: NULL path or output");
    if (dt != TG_F32 && dt != TG_F64) return tg_status_set(st, TG_EDTYPE, "tg_csv_load: bad dtype");
    if (o.header < -1 || o.header > 1)
        return tg_status_set(st, TG_EARG, "tg_csv_load: header %d, want -1, 0 or 1", o.header);
    if (strchr("\n\r0123456789.+-", o.delim))
        return tg_status_set(st, TG_EARG, "tg_csv_load: delimiter '%c' can be part of a number "
                             "or a line end", o.delim == '\n' || o.delim == '\r' ? ' ' : o.delim);
    if (st) st->code = TG_OK, st->msg[0] = '\0';
    char *text = NULL;
    size_t len = 0;
    int rc = slurp(path, &text, &len, st);
    if (rc) return rc;

    /* One pass: every field into vals (row-major, cols per row), checked as it comes. Each
     * value takes at least two bytes of text, so vals is bounded by the file size. */
    double *vals = NULL;
    size_t n_vals = 0, cap = 0;
    int64_t cols = 0, rows = 0, line = 0, first_line = 0, label = 0, max_label = -1;
    const char *s = text;
    if (len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3; /* a UTF-8 byte order mark */
    while (!rc && *s) {
        const char *e = strchr(s, '\n');
        if (!e) e = s + strlen(s);
        const char *next = *e ? e + 1 : e;
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
                rc = tg_status_set(st, TG_EFORMAT, "%s:%lld: one field; need a label and at least "
                                   "one feature (delimiter '%c')", path, (long long)line, o.delim);
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
            double v;
            if (!number(p, q, &v)) {
                while (q > p && (q[-1] == '\r' || q[-1] == ' ')) q--;
                rc = tg_status_set(st, TG_EFORMAT, "%s:%lld: field %lld '%.*s' is not a number",
                                   path, (long long)line, (long long)c + 1,
                                   (int)(q - p < 40 ? q - p : 40), p);
                break;
            }
            if (c == label && !o.regression) {
                if (!(v >= 0 && v <= CSV_MAX_CLASS) || v != floor(v)) {
                    rc = tg_status_set(st, TG_EFORMAT,
                                       "%s:%lld: label %g is not a class index "
                                       "(an integer 0..%d)",
                                       path, (long long)line, v, CSV_MAX_CLASS);
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
