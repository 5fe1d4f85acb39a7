/* test/fuzz_csv.c: libFuzzer harness for the CSV reader (`make fuzz`): every input is
 * loaded three ways (header detected or forced, classification or regression, delimiters). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tapegrad.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tg_fuzz_csv_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    /* detected header, classification, last column; forced header, regression, first column
     * (f64); no header, ';' and the second column from the end */
    const tg_csv_opts opts[3] = {{-1, -1, false, ','}, {1, 0, true, ','}, {0, -2, false, ';'}};
    for (int k = 0; k < 3; k++) {
        tg_csv_opts o = opts[k];
        tg_dataset ds = {0};
        tg_status st;
        int rc = tg_csv_load(path, k == 1 ? TG_F64 : TG_F32, &o, &ds, &st);
        /* the contract: a data set on success; else no output and a message naming the file */
        if (rc == TG_OK ? !ds.x || !ds.y || ds.n < 1 || ds.d < 1
                        : (ds.x || rc != st.code || !strstr(st.msg, path)))
            abort();
        tg_dataset_free(&ds);
    }
    unlink(path);
    return 0;
}
