/*
 * fixture_test: for each checkpoint directory given, runs its reference.safetensors through the C API
 * and checks that
 *   - moe_session_prefill logits (every position) match prefill_logits within 1e-3,
 *   - moe_session_decode logits match decode_logits within 1e-3 at every step, and
 *   - greedy sampling with moe_sampler_sample reproduces decode_ids (the reference's greedy tokens),
 * in the exact mode (precision = MOE_PRECISION_F32), and that a model loaded with the defaults (NULL
 * params) reports MOE_PRECISION_BF16, the library's default.
 * Prints one line per directory and "fixture: N passed, M failed"; exits non-zero on any failure.
 * Assumes a little-endian host (as safetensors data is).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe.h"

#define TOL 1e-3f

struct file {
    unsigned char *data;
    size_t len;
    const char *json; /* the header, NUL-terminated copy */
    size_t data_start;
};

static int read_file(const char *path, struct file *f) {
    FILE *fp = fopen(path, "rb");
    long n = 0;
    if (fp == NULL || fseek(fp, 0, SEEK_END) != 0 || (n = ftell(fp)) < 8 || fseek(fp, 0, SEEK_SET) != 0) {
        if (fp != NULL) {
            fclose(fp);
        }
        return 0;
    }
    f->len = (size_t)n;
    f->data = (unsigned char *)malloc(f->len);
    if (f->data == NULL || fread(f->data, 1, f->len, fp) != f->len) {
        fclose(fp);
        return 0;
    }
    fclose(fp);
    unsigned long long header = 0;
    for (int i = 7; i >= 0; i--) {
        header = (header << 8) | f->data[i];
    }
    if (header > f->len - 8) {
        return 0;
    }
    char *json = (char *)malloc((size_t)header + 1);
    if (json == NULL) {
        return 0;
    }
    memcpy(json, f->data + 8, (size_t)header);
    json[header] = '\0';
    f->json = json;
    f->data_start = 8 + (size_t)header;
    return 1;
}

/* The bytes of tensor `name` with dtype `dtype` ("F32" or "I64"); count = bytes / elem_size. */
static const unsigned char *tensor(const struct file *f, const char *name, const char *dtype, size_t elem,
                                   size_t *count) {
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *entry = strstr(f->json, key);
    if (entry == NULL) {
        return NULL;
    }
    const char *end = strchr(entry, '}');
    char want[32];
    snprintf(want, sizeof want, "\"dtype\":\"%s\"", dtype);
    const char *d = strstr(entry, want);
    const char *o = strstr(entry, "\"data_offsets\":[");
    unsigned long long a = 0, b = 0;
    if (d == NULL || o == NULL || end == NULL || d > end || o > end ||
        sscanf(o + strlen("\"data_offsets\":["), "%llu,%llu", &a, &b) != 2 || b < a ||
        b > f->len - f->data_start || (b - a) % elem != 0) {
        return NULL;
    }
    *count = (size_t)((b - a) / elem);
    return f->data + f->data_start + a;
}

static float f32_at(const unsigned char *p, size_t i) {
    float v;
    memcpy(&v, p + 4 * i, 4);
    return v;
}

static uint32_t id_at(const unsigned char *p, size_t i) {
    long long v;
    memcpy(&v, p + 8 * i, 8);
    return (uint32_t)v;
}

static float max_diff(const float *got, const unsigned char *want, size_t offset, size_t n) {
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - f32_at(want, offset + i));
        if (!(d <= m)) { /* also catches NaN */
            m = d;
        }
    }
    return m;
}

static int check_dir(const char *dir) {
    char path[4096];
    struct file f = {NULL, 0, NULL, 0};
    moe_model *model = NULL;
    moe_session *session = NULL;
    moe_sampler *sampler = NULL;
    uint32_t *prompt = NULL;
    float *logits = NULL;
    int ok = 0;
    size_t n_prompt = 0, n_decode = 0, n_prefill_logits = 0, n_decode_logits = 0;

    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    if (!read_file(path, &f)) {
        printf("FAIL %s: cannot read %s\n", dir, path);
        goto done;
    }
    const unsigned char *input_ids = tensor(&f, "input_ids", "I64", 8, &n_prompt);
    const unsigned char *decode_ids = tensor(&f, "decode_ids", "I64", 8, &n_decode);
    const unsigned char *prefill_logits = tensor(&f, "prefill_logits", "F32", 4, &n_prefill_logits);
    const unsigned char *decode_logits = tensor(&f, "decode_logits", "F32", 4, &n_decode_logits);
    if (!input_ids || !decode_ids || !prefill_logits || !decode_logits) {
        printf("FAIL %s: reference.safetensors lacks a tensor\n", dir);
        goto done;
    }
    /* The exact mode: the library's default is bf16 activations for bf16 weights. */
    moe_model_params mp = moe_model_default_params();
    mp.precision = MOE_PRECISION_F32;
    moe_status s = moe_model_load(dir, &mp, &model);
    if (s != MOE_OK) {
        printf("FAIL %s: load: %s: %s\n", dir, moe_status_str(s), moe_last_error());
        goto done;
    }
    moe_precision precision = MOE_PRECISION_BF16;
    if ((s = moe_model_precision(model, &precision)) != MOE_OK || precision != MOE_PRECISION_F32) {
        printf("FAIL %s: the exact mode reports precision %d\n", dir, (int)precision);
        goto done;
    }
    moe_model *defaults = NULL;
    if ((s = moe_model_load(dir, NULL, &defaults)) != MOE_OK ||
        (s = moe_model_precision(defaults, &precision)) != MOE_OK || precision != MOE_PRECISION_BF16) {
        printf("FAIL %s: the defaults report precision %d (%s)\n", dir, (int)precision, moe_status_str(s));
        moe_model_free(defaults);
        goto done;
    }
    moe_model_free(defaults);
    size_t v = moe_model_vocab_size(model);
    if (n_prefill_logits != n_prompt * v || n_decode_logits != n_decode * v) {
        printf("FAIL %s: reference shapes do not fit vocab %zu\n", dir, v);
        goto done;
    }
    prompt = (uint32_t *)malloc(n_prompt * sizeof *prompt);
    logits = (float *)malloc(n_prompt * v * sizeof *logits);
    if (prompt == NULL || logits == NULL) {
        goto done;
    }
    for (size_t i = 0; i < n_prompt; i++) {
        prompt[i] = id_at(input_ids, i);
    }
    if ((s = moe_session_new(model, NULL, &session)) != MOE_OK || (s = moe_sampler_new(NULL, &sampler)) != MOE_OK ||
        (s = moe_session_prefill(session, prompt, n_prompt, logits, n_prompt * v)) != MOE_OK) {
        printf("FAIL %s: %s: %s\n", dir, moe_status_str(s), moe_last_error());
        goto done;
    }
    float worst = max_diff(logits, prefill_logits, 0, n_prompt * v);
    if (worst > TOL) {
        printf("FAIL %s: prefill logits differ by %g\n", dir, (double)worst);
        goto done;
    }
    const float *next = logits + (n_prompt - 1) * v;
    for (size_t step = 0; step < n_decode; step++) {
        uint32_t token = 0;
        uint32_t want = id_at(decode_ids, step);
        if ((s = moe_sampler_sample(sampler, next, v, NULL, 0, &token)) != MOE_OK) {
            printf("FAIL %s: sample: %s\n", dir, moe_last_error());
            goto done;
        }
        if (token != want) {
            printf("FAIL %s: greedy token %zu is %u, reference %u\n", dir, step, (unsigned)token, (unsigned)want);
            goto done;
        }
        if ((s = moe_session_decode(session, want, logits, v)) != MOE_OK) {
            printf("FAIL %s: decode: %s\n", dir, moe_last_error());
            goto done;
        }
        float d = max_diff(logits, decode_logits, step * v, v);
        if (d > TOL) {
            printf("FAIL %s: decode step %zu logits differ by %g\n", dir, step, (double)d);
            goto done;
        }
        worst = d > worst ? d : worst;
        next = logits;
    }
    printf("ok   %s: %zu prompt tokens, %zu greedy tokens match, max logit diff %.2e\n", dir, n_prompt, n_decode,
           (double)worst);
    ok = 1;

done:
    free(logits);
    free(prompt);
    free(f.data);
    free((void *)f.json);
    moe_sampler_free(sampler);
    moe_session_free(session);
    moe_model_free(model);
    return ok;
}

int main(int argc, char **argv) {
    int passed = 0, failed = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: %s CHECKPOINT_DIR...\n", argv[0]);
        return 2;
    }
    for (int i = 1; i < argc; i++) {
        if (check_dir(argv[i])) {
            passed++;
        } else {
            failed++;
        }
    }
    printf("fixture: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
