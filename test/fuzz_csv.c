/* test/fuzz_csv.c: libFuzzer harness for the CSV reader (`make fuzz`): every input is
 * loaded with header detection, as classification and as regression. */
#include <stdio.h>
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
    for (int reg = 0; reg < 2; reg++) {
        tg_csv_opts o = {.header = -1, .label_col = reg ? 0 : -1, .regression = reg, .delim = ','};
        tg_dataset ds;
        tg_status st;
        if (tg_csv_load(path, TG_F32, &o, &ds, &st) == TG_OK) tg_dataset_free(&ds);
    }
    unlink(path);
    return 0;
}
