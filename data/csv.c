/* data/csv.c: numeric CSV files. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tapegrad.h"

#define CSV_MAX_BYTES ((size_t)1 << 31)

/* Parses one field [s, e) as a number; false if it is not one. */
static bool number(const char *s, const char *e, double *v)
{
    while (s < e && (*s == ' ' || *s == '\t')) s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) e--;
    if (s == e || e - s > 63) return false;
    char tmp[64];
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

int tg_csv_load(const char *path, tg_dtype dt, const tg_csv_opts *opts, tg_dataset *out, tg_status *st)
{
    tg_csv_opts o = opts ? *opts : (tg_csv_opts){-1, -1, false, ','};
    if (!o.delim) o.delim = ',';
    if (!path || !out) return tg_status_set(st, TG_EARG, "tg_csv_load: NULL path or output");
    if (dt != TG_F32 && dt != TG_F64) return tg_status_set(st, TG_EDTYPE, "tg_csv_load: bad dtype");
    FILE *f = fopen(path, "rb");
    if (!f) return tg_status_set(st, TG_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || (size_t)sb.st_size > CSV_MAX_BYTES) {
        fclose(f);
        return tg_status_set(st, TG_EFORMAT, "%s: not a regular file of at most 2 GiB", path);
    }
    size_t len = (size_t)sb.st_size;
    char *text = malloc(len + 1);
    if (!text || fread(text, 1, len, f) != len) {
        fclose(f);
        free(text);
        return tg_status_set(st, text ? TG_EIO : TG_ENOMEM, "%s: cannot read", path);
    }
    fclose(f);
    text[len] = '\0';
    if (memchr(text, '\0', len)) {
        free(text);
        return tg_status_set(st, TG_EFORMAT, "%s: binary data (a NUL byte) in a CSV file", path);
    }

    /* Pass 1: lines, the field count, the header. */
    int rc = TG_OK;
    int64_t cols = 0, rows = 0, line = 0, first_line = 0;
    bool header = false;
    const char *data_start = NULL;
    for (const char *s = text; *s;) {
        const char *e = strchr(s, '\n');
        if (!e) e = s + strlen(s);
        line++;
        if (!blank(s, e)) {
            int64_t nf = fields(s, e, o.delim);
            if (!cols) {
                cols = nf, first_line = line;
                bool numeric = true;
                for (const char *p = s; numeric;) {
                    const char *q = memchr(p, o.delim, (size_t)(e - p));
                    double v;
                    numeric = number(p, q ? q : e, &v);
                    if (!q) break;
                    p = q + 1;
                }
                header = o.header == 1 || (o.header == -1 && !numeric);
                if (!header) rows++;
                data_start = header ? e : s;
            } else if (nf != cols) {
                rc = tg_status_set(st, TG_EFORMAT, "%s:%lld: %lld fields, line %lld has %lld", path,
                                   (long long)line, (long long)nf, (long long)first_line, (long long)cols);
                break;
            } else {
                rows++;
            }
        }
        s = *e ? e + 1 : e;
    }
    int label = o.label_col < 0 ? (int)cols + o.label_col : o.label_col;
    if (!rc && (rows == 0 || cols < 2))
        rc = tg_status_set(st, TG_EFORMAT, "%s: no data rows with a label and at least one feature", path);
    if (!rc && (label < 0 || label >= cols))
        rc = tg_status_set(st, TG_EARG, "%s: label column %d out of range for %lld columns", path,
                           o.label_col, (long long)cols);
    tg_tensor *x = NULL, *y = NULL;
    if (!rc) {
        int64_t xs[2] = {rows, cols - 1}, ys[2] = {rows, 1};
        x = tg_tensor_new(dt, 2, xs);
        y = tg_tensor_new(dt, o.regression ? 2 : 1, ys);
        if (!x || !y) rc = tg_status_set(st, TG_ENOMEM, "%s: out of memory", path);
    }
    /* Pass 2: values. */
    int64_t r = 0, max_label = -1;
    line = 0;
    for (const char *s = text; !rc && *s;) {
        const char *e = strchr(s, '\n');
        if (!e) e = s + strlen(s);
        line++;
        if (s >= data_start && !blank(s, e) && !(header && line == first_line)) {
            const char *p = s;
            for (int64_t c = 0, k = 0; c < cols; c++) {
                const char *q = memchr(p, o.delim, (size_t)(e - p));
                if (!q) q = e;
                double v;
                if (!number(p, q, &v)) {
                    rc = tg_status_set(st, TG_EFORMAT, "%s:%lld: field %lld '%.*s' is not a number", path,
                                       (long long)line, (long long)c + 1, (int)(q - p < 40 ? q - p : 40), p);
                    break;
                }
                if (c == label) {
                    if (!o.regression && (v < 0 || v > 1e6 || v != (double)(int64_t)v)) {
                        rc = tg_status_set(st, TG_EFORMAT, "%s:%lld: label %g is not a class index "
                                           "0, 1, 2...", path, (long long)line, v);
                        break;
                    }
                    if (!o.regression && (int64_t)v > max_label) max_label = (int64_t)v;
                    tg_set(y, r, v);
                } else {
                    tg_set(x, r * (cols - 1) + k++, v);
                }
                p = q + 1;
            }
            r++;
        }
        s = *e ? e + 1 : e;
    }
    free(text);
    if (rc) {
        tg_tensor_free(x), tg_tensor_free(y);
        return rc;
    }
    out->x = x, out->y = y, out->n = rows, out->d = cols - 1;
    out->n_classes = o.regression ? 0 : (int)(max_label + 1);
    return TG_OK;
}
