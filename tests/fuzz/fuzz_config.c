/* fuzz_config.c -- libFuzzer target: the config loader (config/config*.c) on
 * any bytes. The input is the config file up to its first NUL byte; what
 * follows are --set overrides, one per line (at most 8), so the override
 * parser is fuzzed too. Inputs that mention "include" are skipped: libconfig's
 * @include reads any file named, which is the user's business, not input
 * foldline must survive (an @include of /dev/zero never ends). The seeds name
 * /dev/null as data.file, which the loader only checks for readability. */
#include <string.h>

#include "fuzz_common.h"
#include "config/config.h"

static fl_train_config cfg; /* about 600 KB: not on the stack */

static int mentions_include(const uint8_t *data, size_t size)
{
    static const char word[] = "include";
    for (size_t i = 0; i + sizeof word - 1 <= size; i++)
        if (memcmp(data + i, word, sizeof word - 1) == 0)
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (mentions_include(data, size))
        return 0;
    const uint8_t *nul = memchr(data, 0, size);
    size_t file_len = nul ? (size_t)(nul - data) : size;
    char path[64];
    int fd = fuzz_memfile(data, file_len, path, sizeof path);

    char *rest = NULL;
    const char *over[8];
    int n_over = 0;
    if (nul) {
        size_t n = size - file_len - 1;
        rest = malloc(n + 1);
        if (!rest)
            abort();
        memcpy(rest, nul + 1, n);
        rest[n] = '\0';
        for (char *line = rest; line && n_over < 8;) {
            char *next = strchr(line, '\n');
            if (next)
                *next++ = '\0';
            over[n_over++] = line;
            line = next;
        }
    }
    fl_error err;
    fl_error_clear(&err);
    fl_code rc = fl_config_load(path, over, n_over, &cfg, &err);
    if (rc && !err.msg[0])
        abort(); /* a failure must say why */
    if (!rc) {
        for (int m = 0; m < cfg.n_models; m++)
            fl_config_check_data(&cfg, m, 3, 5, &err);
        fl_config_check_world(&cfg, 3, &err);
        fl_config_check_backend(&cfg, 0, 0, "host", &err);
    }
    free(rest);
    close(fd);
    return 0;
}
