/* test/fuzz_idx.c: libFuzzer harness for the IDX reader (`make fuzz`). Each input is
 * written to a file, plain and gzip-compressed, and loaded; the reader must return an
 * error or a tensor, never crash, leak or read out of bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "tapegrad.h"

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    char path[64];
    snprintf(path, sizeof path, "/tmp/tg_fuzz_idx_%d", (int)getpid());
    for (int gz = 0; gz < 2; gz++) {
        if (gz) {
            gzFile g = gzopen(path, "wb");
            if (!g) return 0;
            if (size) gzwrite(g, data, (unsigned)size);
            gzclose(g);
        } else {
            FILE *f = fopen(path, "wb");
            if (!f) return 0;
            fwrite(data, 1, size, f);
            fclose(f);
        }
        tg_tensor *t = NULL;
        tg_status st;
        int rc = tg_idx_load(path, gz ? TG_F64 : TG_F32, &t, &st);
        /* the contract: a tensor on success; else no output and a message naming the file */
        if (rc == TG_OK ? !t : (t || rc != st.code || !strstr(st.msg, path))) abort();
        tg_tensor_free(t);
    }
    unlink(path);
    return 0;
}
