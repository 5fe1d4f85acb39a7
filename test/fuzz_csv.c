/* test/fuzz_csv.c: libFuzzer harness for the CSV reader (`make fuzz`): every input is
 * loaded four ways (header detected or forced, classification or regression, delimiters,
 * one of them the input's first byte). The contract: a data set of finite values on success,
 * else no output and a message naming the file; f32 refuses more than f64 (values beyond its
 * range), never less; a delimiter that can be part of a number is TG_EARG. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapegrad.h"

static bool finite(const tg_tensor *t)
{
    for (int64_t i = 0; i < tg_tensor_numel(t); i++)
        if (!isfinite(tg_get(t, i))) return false;
    return true;
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tg_fuzz_csv_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    /* detected header, classification, last column; forced header, regression, first column;
     * no header, ';' and the second column from the end; the first byte as the delimiter */
    tg_csv_opts opts[4] = {
        {-1, -1, false, ','},
        {1, 0, true, ','},
        {0, -2, false, ';'},
        /* NOLINTNEXTLINE(bugprone-narrowing-conversions): any byte value will do */
        {-1, 1, true, size ? (char)data[0] : ','}};
    for (int k = 0; k < 4; k++) {
        tg_dataset ds[2] = {{0}, {0}};
        int rc[2];
        for (int f64 = 0; f64 < 2; f64++) {
            tg_status st;
            rc[f64] = tg_csv_load(path, f64 ? TG_F64 : TG_F32, &opts[k], &ds[f64], &st);
            if (rc[f64] == TG_OK ? !ds[f64].x || !ds[f64].y || ds[f64].n < 1 || ds[f64].d < 1 ||
                                       !finite(ds[f64].x) || !finite(ds[f64].y)
                                 : (ds[f64].x || rc[f64] != st.code || !strstr(st.msg, path)))
                abort();
        }
        if (rc[0] == TG_OK && (rc[1] != TG_OK || ds[0].n != ds[1].n || ds[0].d != ds[1].d)) abort();
        if (opts[k].delim && strchr("0123456789+-.eEinfaINFAxXpP\"'\r\n", opts[k].delim) &&
            rc[0] != TG_EARG)
            abort();
        tg_dataset_free(&ds[0]), tg_dataset_free(&ds[1]);
    }
    unlink(path);
    return 0;
}
