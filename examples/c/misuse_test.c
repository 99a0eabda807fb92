/*
 * misuse_test: calls the C API the wrong way and checks that each call answers an error status with
 * a message, leaves out-parameters and buffers untouched, and never crashes. Valid C11 and C++.
 *
 *   misuse_test MODEL_DIR      (a small checkpoint, e.g. fixtures/deepseek_v3)
 *
 * Prints each failed check and "misuse: N passed, M failed"; exits non-zero on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe.h"

static int passed = 0, failed = 0;

static void check(int cond, const char *what, int line) {
    if (cond) {
        passed++;
    } else {
        failed++;
        printf("FAIL line %d: %s (last error: %s)\n", line, what, moe_last_error());
    }
}
#define CHECK(cond) check((cond), #cond, __LINE__)

/* `call` returned `want` and left a non-empty message mentioning `needle`. */
static int failed_with(moe_status got, moe_status want, const char *needle) {
    const char *msg = moe_last_error();
    if (got != want) {
        printf("  got %s, want %s\n", moe_status_str(got), moe_status_str(want));
        return 0;
    }
    return msg != NULL && msg[0] != '\0' && (needle == NULL || strstr(msg, needle) != NULL);
}

static moe_model *const SENTINEL_MODEL = (moe_model *)(uintptr_t)0x1234;
static moe_session *const SENTINEL_SESSION = (moe_session *)(uintptr_t)0x1234;
static moe_sampler *const SENTINEL_SAMPLER = (moe_sampler *)(uintptr_t)0x1234;

static void statuses(void) {
    CHECK(MOE_OK == 0);
    CHECK(strcmp(moe_status_str(MOE_OK), "ok") == 0);
    for (uint32_t s = 1; s <= (uint32_t)MOE_ERR_CANCELLED; s++) {
        const char *text = moe_status_str((moe_status)s);
        CHECK(text != NULL && text[0] != '\0' && strcmp(text, "unknown status") != 0);
        CHECK(strcmp(text, moe_status_str((moe_status)(s - 1))) != 0);
    }
    CHECK(strcmp(moe_status_str((moe_status)9999), "unknown status") == 0);
    CHECK(moe_last_error() != NULL && moe_last_error()[0] == '\0'); /* nothing failed yet */
    CHECK(strcmp(moe_version(), MOE_VERSION_STRING) == 0);
    char expect[64];
    snprintf(expect, sizeof expect, "%d.%d.%d", MOE_VERSION_MAJOR, MOE_VERSION_MINOR, MOE_VERSION_PATCH);
    CHECK(strncmp(moe_version(), expect, strlen(expect)) == 0);
}

static void loading(void) {
    moe_model *model = SENTINEL_MODEL;
    CHECK(failed_with(moe_model_load(NULL, NULL, &model), MOE_ERR_NULL_ARGUMENT, "path"));
    CHECK(model == SENTINEL_MODEL);
    CHECK(failed_with(moe_model_load("fixtures/deepseek_v3", NULL, NULL), MOE_ERR_NULL_ARGUMENT, "out"));
    CHECK(failed_with(moe_model_load("", NULL, &model), MOE_ERR_INVALID_ARGUMENT, "path"));
    CHECK(failed_with(moe_model_load("no/such/dir", NULL, &model), MOE_ERR_NOT_FOUND, "no/such/dir"));
    CHECK(model == SENTINEL_MODEL);
    /* A directory without config.json. */
    CHECK(failed_with(moe_model_load("examples/c", NULL, &model), MOE_ERR_NOT_FOUND, "config.json"));
    CHECK(model == SENTINEL_MODEL);
    moe_model_free(NULL); /* no-op */
}

static void model_getters(void) {
    CHECK(moe_model_vocab_size(NULL) == 0);
    CHECK(strstr(moe_last_error(), "model") != NULL);
    CHECK(moe_model_max_context(NULL) == 0);
    CHECK(moe_model_architecture(NULL) == NULL);
    CHECK(moe_model_family(NULL) == NULL);
    const uint32_t *eos = NULL;
    size_t n_eos = 77;
    CHECK(failed_with(moe_model_eos_tokens(NULL, &eos, &n_eos), MOE_ERR_NULL_ARGUMENT, "model"));
    CHECK(eos == NULL && n_eos == 77);
}

static void sessions(moe_model *model) {
    const uint32_t vocab = moe_model_vocab_size(model);
    moe_session *session = SENTINEL_SESSION;
    CHECK(failed_with(moe_session_new(NULL, NULL, &session), MOE_ERR_NULL_ARGUMENT, "model"));
    CHECK(failed_with(moe_session_new(model, NULL, NULL), MOE_ERR_NULL_ARGUMENT, "out"));
    CHECK(session == SENTINEL_SESSION);

    moe_session_params params = moe_session_default_params();
    params.max_context = 4;
    session = NULL;
    CHECK(moe_session_new(model, &params, &session) == MOE_OK && session != NULL);
    CHECK(moe_session_max_context(session) == 4);

    float *logits = (float *)malloc(5 * (size_t)vocab * sizeof(float));
    if (logits == NULL) {
        return;
    }
    for (size_t i = 0; i < 5 * (size_t)vocab; i++) {
        logits[i] = -7.0f;
    }
    const uint32_t tokens[5] = {1, 2, 3, 4, 5};
    const uint32_t bad[2] = {1, vocab};

    CHECK(failed_with(moe_session_prefill(session, NULL, 2, logits, vocab), MOE_ERR_NULL_ARGUMENT, "tokens"));
    CHECK(failed_with(moe_session_prefill(session, tokens, 0, NULL, 0), MOE_ERR_EMPTY_PROMPT, NULL));
    CHECK(failed_with(moe_session_prefill(session, bad, 2, logits, vocab), MOE_ERR_TOKEN_OUT_OF_RANGE, "out of range"));
    CHECK(failed_with(moe_session_prefill(session, tokens, 2, logits, vocab - 1), MOE_ERR_BUFFER_SIZE, "logits_len"));
    CHECK(failed_with(moe_session_prefill(session, tokens, 2, logits, vocab + 1), MOE_ERR_BUFFER_SIZE, "logits_len"));
    CHECK(failed_with(moe_session_prefill(session, tokens, 2, logits, 2 * vocab - 1), MOE_ERR_BUFFER_SIZE, NULL));
    CHECK(failed_with(moe_session_prefill(session, tokens, 2, NULL, vocab), MOE_ERR_NULL_ARGUMENT, "logits"));
    CHECK(failed_with(moe_session_prefill(session, tokens, 5, logits, vocab), MOE_ERR_CONTEXT_FULL, "context"));
    CHECK(failed_with(moe_session_decode(session, vocab, logits, vocab), MOE_ERR_TOKEN_OUT_OF_RANGE, NULL));
    CHECK(failed_with(moe_session_decode(session, 1, logits, 3), MOE_ERR_BUFFER_SIZE, NULL));
    CHECK(failed_with(moe_session_prefill(NULL, tokens, 2, logits, vocab), MOE_ERR_NULL_ARGUMENT, "session"));
    CHECK(moe_session_len(session) == 0); /* every failure above changed nothing */
    int untouched = 1;
    for (size_t i = 0; i < 5 * (size_t)vocab; i++) {
        untouched &= logits[i] == -7.0f;
    }
    CHECK(untouched);

    /* Valid calls: all positions, last only, none; then the context is full. */
    CHECK(moe_session_prefill(session, tokens, 2, logits, 2 * vocab) == MOE_OK);
    CHECK(moe_session_prefill(session, tokens, 1, logits, vocab) == MOE_OK);
    CHECK(moe_session_decode(session, 3, NULL, 0) == MOE_OK);
    CHECK(moe_session_len(session) == 4);
    CHECK(failed_with(moe_session_decode(session, 3, logits, vocab), MOE_ERR_CONTEXT_FULL, NULL));
    CHECK(moe_session_len(session) == 4);
    const uint32_t *held = NULL;
    size_t n_held = 0;
    CHECK(moe_session_tokens(session, &held, &n_held) == MOE_OK && n_held == 4 && held != NULL && held[3] == 3);
    CHECK(failed_with(moe_session_tokens(session, NULL, &n_held), MOE_ERR_NULL_ARGUMENT, "tokens"));
    CHECK(moe_session_truncate(session, 1) == MOE_OK && moe_session_len(session) == 1);
    CHECK(moe_session_reset(session) == MOE_OK && moe_session_len(session) == 0);
    CHECK(moe_session_tokens(session, &held, &n_held) == MOE_OK && n_held == 0);

    /* Use after free, double free, and a handle of the wrong kind. */
    moe_session_free(session);
    CHECK(failed_with(moe_session_prefill(session, tokens, 1, logits, vocab), MOE_ERR_INVALID_HANDLE, "freed"));
    CHECK(failed_with(moe_session_reset(session), MOE_ERR_INVALID_HANDLE, NULL));
    CHECK(moe_session_len(session) == 0);
    moe_session_free(session); /* double free: refused, reported, harmless */
    CHECK(strstr(moe_last_error(), "not a live moe_session") != NULL);
    CHECK(failed_with(moe_session_reset((moe_session *)(void *)model), MOE_ERR_INVALID_HANDLE, "Model"));
    CHECK(moe_model_vocab_size((const moe_model *)(const void *)tokens) == 0);
    CHECK(strstr(moe_last_error(), "not a live moe_model") != NULL);
    moe_session_free(NULL);
    free(logits);
}

static void batches(moe_model *model, const char *dir) {
    const uint32_t vocab = moe_model_vocab_size(model);
    moe_session *a = NULL, *b = NULL, *alone = NULL, *foreign = NULL;
    moe_model *other = NULL;
    CHECK(moe_session_new(model, NULL, &a) == MOE_OK && moe_session_new(model, NULL, &b) == MOE_OK);
    CHECK(moe_session_new(model, NULL, &alone) == MOE_OK);
    CHECK(moe_model_load(dir, NULL, &other) == MOE_OK && moe_session_new(other, NULL, &foreign) == MOE_OK);
    float *logits = (float *)malloc(3 * (size_t)vocab * sizeof(float));
    float *want = (float *)malloc((size_t)vocab * sizeof(float));
    if (logits == NULL || want == NULL) {
        free(logits);
        free(want);
        return;
    }
    for (size_t i = 0; i < 3 * (size_t)vocab; i++) {
        logits[i] = -7.0f;
    }
    const uint32_t tokens[3] = {1, 2, 3};
    moe_session *twice[3] = {a, b, a};
    moe_session *mixed[2] = {a, foreign};
    moe_session *with_null[2] = {a, NULL};
    moe_session *pair[2] = {a, b};
    CHECK(failed_with(moe_batch_decode(twice, tokens, 3, logits, 3 * vocab), MOE_ERR_INVALID_ARGUMENT, "repeats"));
    CHECK(failed_with(moe_batch_decode(mixed, tokens, 2, logits, 2 * vocab), MOE_ERR_INVALID_ARGUMENT, "another model"));
    CHECK(failed_with(moe_batch_decode(with_null, tokens, 2, logits, 2 * vocab), MOE_ERR_NULL_ARGUMENT, "sessions[1]"));
    CHECK(failed_with(moe_batch_decode(NULL, tokens, 2, logits, 2 * vocab), MOE_ERR_NULL_ARGUMENT, "sessions"));
    CHECK(failed_with(moe_batch_decode(pair, NULL, 2, logits, 2 * vocab), MOE_ERR_NULL_ARGUMENT, "tokens"));
    CHECK(failed_with(moe_batch_decode(pair, tokens, 0, logits, 0), MOE_ERR_INVALID_ARGUMENT, "at least one"));
    CHECK(failed_with(moe_batch_decode(pair, tokens, 2, logits, vocab), MOE_ERR_BUFFER_SIZE, "logits_len"));
    const uint32_t bad[2] = {1, vocab};
    CHECK(failed_with(moe_batch_decode(pair, bad, 2, logits, 2 * vocab), MOE_ERR_TOKEN_OUT_OF_RANGE, NULL));
    moe_session *stale[2] = {a, (moe_session *)(void *)model};
    CHECK(failed_with(moe_batch_decode(stale, tokens, 2, logits, 2 * vocab), MOE_ERR_INVALID_HANDLE, NULL));
    CHECK(moe_session_len(a) == 0 && moe_session_len(b) == 0); /* nothing changed */
    int untouched = 1;
    for (size_t i = 0; i < 3 * (size_t)vocab; i++) {
        untouched &= logits[i] == -7.0f;
    }
    CHECK(untouched);

    /* A prompt chunk beside one token, then a decode step: row 1 is what b alone gets. */
    const uint32_t *chunks[2] = {tokens, tokens + 2};
    const size_t lens[2] = {2, 1};
    CHECK(moe_batch_prefill(pair, chunks, lens, 2, logits, 3 * vocab) == MOE_OK);
    CHECK(moe_batch_decode(pair, tokens, 2, logits, 2 * vocab) == MOE_OK);
    CHECK(moe_session_len(a) == 3 && moe_session_len(b) == 2);
    CHECK(moe_session_decode(alone, 3, NULL, 0) == MOE_OK && moe_session_decode(alone, 2, want, vocab) == MOE_OK);
    float diff = 0.0f;
    for (size_t i = 0; i < vocab; i++) {
        float d = logits[vocab + i] - want[i];
        diff = d > diff ? d : (-d > diff ? -d : diff);
    }
    CHECK(diff <= 1e-5f);
    moe_session_free(a);
    CHECK(failed_with(moe_batch_decode(pair, tokens, 2, logits, 2 * vocab), MOE_ERR_INVALID_HANDLE, "freed"));
    moe_session_free(b);
    moe_session_free(alone);
    moe_session_free(foreign);
    moe_model_free(other);
    free(logits);
    free(want);
}

/* Forks, snapshots and cache precision: every misuse is its status; good calls round-trip. */
static void snapshots(moe_model *model) {
    const uint32_t vocab = moe_model_vocab_size(model);
    const uint32_t tokens[6] = {1, 2, 3, 4, 5, 6};
    moe_session_params params = moe_session_default_params();
    CHECK(params.kv_dtype == MOE_KV_DTYPE_F32);
    moe_session *session = SENTINEL_SESSION;
    params.kv_dtype = (moe_kv_dtype)7;
    CHECK(failed_with(moe_session_new(model, &params, &session), MOE_ERR_INVALID_ARGUMENT, "kv_dtype"));
    CHECK(session == SENTINEL_SESSION);
    params.kv_dtype = MOE_KV_DTYPE_BF16;
    session = NULL;
    CHECK(moe_session_new(model, &params, &session) == MOE_OK);
    CHECK(moe_session_prefill(session, tokens, 4, NULL, 0) == MOE_OK);
    moe_session *f32_session = NULL;
    CHECK(moe_session_new(model, NULL, &f32_session) == MOE_OK);
    CHECK(moe_session_prefill(f32_session, tokens, 4, NULL, 0) == MOE_OK);
    CHECK(moe_session_kv_cache_bytes(session) * 2 == moe_session_kv_cache_bytes(f32_session));
    moe_session_free(f32_session);

    /* Fork: NULLs refused, the fork shares the prefix, both continue. */
    moe_session *fork = SENTINEL_SESSION;
    CHECK(failed_with(moe_session_fork(NULL, &fork), MOE_ERR_NULL_ARGUMENT, "session"));
    CHECK(failed_with(moe_session_fork(session, NULL), MOE_ERR_NULL_ARGUMENT, "out"));
    CHECK(fork == SENTINEL_SESSION);
    CHECK(moe_session_kv_cache_shared_bytes(session) == 0);
    CHECK(moe_session_fork(session, &fork) == MOE_OK && fork != session);
    CHECK(moe_session_len(fork) == 4);
    CHECK(moe_session_kv_cache_shared_bytes(fork) == moe_session_kv_cache_bytes(session));
    CHECK(moe_session_decode(fork, 5, NULL, 0) == MOE_OK && moe_session_len(fork) == 5);
    CHECK(moe_session_len(session) == 4);
    CHECK(moe_session_kv_cache_shared_bytes(NULL) == 0);

    /* Snapshot into a buffer: the size query, a short buffer, NULLs. */
    size_t need = 0;
    CHECK(failed_with(moe_session_snapshot(fork, NULL, 0, &need), MOE_ERR_BUFFER_TOO_SMALL, "needs"));
    CHECK(need > 56);
    CHECK(failed_with(moe_session_snapshot(fork, NULL, 0, NULL), MOE_ERR_NULL_ARGUMENT, "len"));
    CHECK(failed_with(moe_session_snapshot(NULL, NULL, 0, &need), MOE_ERR_NULL_ARGUMENT, "session"));
    uint8_t *buf = (uint8_t *)malloc(need + 1);
    float *a = (float *)malloc(2 * (size_t)vocab * sizeof(float));
    if (buf == NULL || a == NULL) {
        free(buf);
        free(a);
        return;
    }
    float *b = a + vocab;
    size_t len = 0;
    CHECK(failed_with(moe_session_snapshot(fork, buf, need - 1, &len), MOE_ERR_BUFFER_TOO_SMALL, NULL));
    CHECK(len == need);
    CHECK(moe_session_snapshot(fork, buf, need + 1, &len) == MOE_OK && len == need);

    /* Restore: misuse, then a session that continues like the one saved. */
    moe_session *restored = SENTINEL_SESSION;
    CHECK(failed_with(moe_session_restore(NULL, buf, len, &restored), MOE_ERR_NULL_ARGUMENT, "model"));
    CHECK(failed_with(moe_session_restore(model, NULL, len, &restored), MOE_ERR_NULL_ARGUMENT, "bytes"));
    CHECK(failed_with(moe_session_restore(model, buf, len, NULL), MOE_ERR_NULL_ARGUMENT, "out"));
    CHECK(failed_with(moe_session_restore(model, buf, len - 1, &restored), MOE_ERR_SNAPSHOT_TRUNCATED, "truncated"));
    CHECK(failed_with(moe_session_restore(model, buf, 0, &restored), MOE_ERR_SNAPSHOT_TRUNCATED, NULL));
    buf[len / 2] ^= 0x10;
    CHECK(failed_with(moe_session_restore(model, buf, len, &restored), MOE_ERR_SNAPSHOT_CORRUPT, "checksum"));
    buf[len / 2] ^= 0x10;
    buf[8] ^= 1; /* the format version */
    CHECK(failed_with(moe_session_restore(model, buf, len, &restored), MOE_ERR_SNAPSHOT_VERSION, "version"));
    buf[8] ^= 1;
    CHECK(failed_with(moe_session_restore((moe_model *)(void *)session, buf, len, &restored), MOE_ERR_INVALID_HANDLE, NULL));
    CHECK(restored == SENTINEL_SESSION);
    moe_model *other = NULL;
    CHECK(moe_model_load("fixtures/qwen3_moe", NULL, &other) == MOE_OK);
    CHECK(failed_with(moe_session_restore(other, buf, len, &restored), MOE_ERR_SNAPSHOT_MODEL_MISMATCH, "another model"));
    moe_model_free(other);
    CHECK(restored == SENTINEL_SESSION);
    CHECK(moe_session_restore(model, buf, len, &restored) == MOE_OK);
    CHECK(moe_session_len(restored) == 5);
    CHECK(moe_session_kv_cache_bytes(restored) == moe_session_kv_cache_bytes(fork)); /* bf16 kept */
    CHECK(moe_session_decode(restored, 6, a, vocab) == MOE_OK);
    CHECK(moe_session_decode(fork, 6, b, vocab) == MOE_OK);
    CHECK(memcmp(a, b, vocab * sizeof(float)) == 0);

    /* Files: NULL and empty paths, an unwritable one, a round trip. */
    CHECK(failed_with(moe_session_save(session, NULL), MOE_ERR_NULL_ARGUMENT, "path"));
    CHECK(failed_with(moe_session_save(session, ""), MOE_ERR_INVALID_ARGUMENT, "path"));
    CHECK(failed_with(moe_session_save(session, "no/such/dir/s.snap"), MOE_ERR_NOT_FOUND, NULL));
    CHECK(failed_with(moe_session_restore_file(model, "no/such/file", &restored), MOE_ERR_NOT_FOUND, NULL));
    CHECK(failed_with(moe_session_restore_file(model, NULL, &restored), MOE_ERR_NULL_ARGUMENT, "path"));
    char path[64];
    snprintf(path, sizeof path, "/tmp/moe-misuse-%ld.snap", (long)(uintptr_t)buf);
    CHECK(moe_session_save(session, path) == MOE_OK);
    moe_session *from_file = NULL;
    CHECK(moe_session_restore_file(model, path, &from_file) == MOE_OK);
    CHECK(moe_session_len(from_file) == 4);
    CHECK(moe_session_decode(from_file, 5, a, vocab) == MOE_OK);
    CHECK(moe_session_decode(session, 5, b, vocab) == MOE_OK);
    CHECK(memcmp(a, b, vocab * sizeof(float)) == 0);
    remove(path);

    /* Freed sessions are refused; the fork outlives the session it came from. */
    moe_session_free(session);
    CHECK(failed_with(moe_session_fork(session, &restored), MOE_ERR_INVALID_HANDLE, NULL));
    CHECK(failed_with(moe_session_snapshot(session, buf, need, &len), MOE_ERR_INVALID_HANDLE, NULL));
    CHECK(moe_session_decode(fork, 7, NULL, 0) == MOE_OK);
    moe_session_free(fork);
    moe_session_free(restored);
    moe_session_free(from_file);
    free(buf);
    free(a);
}

static void samplers(moe_model *model) {
    const uint32_t vocab = moe_model_vocab_size(model);
    moe_sampler *sampler = SENTINEL_SAMPLER;
    moe_sampler_params p = moe_sampler_default_params();
    p.temperature = -1.0f;
    CHECK(failed_with(moe_sampler_new(&p, &sampler), MOE_ERR_INVALID_ARGUMENT, "temperature"));
    p = moe_sampler_default_params();
    p.top_p = 0.0f;
    CHECK(failed_with(moe_sampler_new(&p, &sampler), MOE_ERR_INVALID_ARGUMENT, "top_p"));
    p = moe_sampler_default_params();
    p.repetition_penalty = 0.0f;
    CHECK(failed_with(moe_sampler_new(&p, &sampler), MOE_ERR_INVALID_ARGUMENT, "repetition_penalty"));
    p = moe_sampler_default_params();
    p.min_p = 2.0f;
    CHECK(failed_with(moe_sampler_new(&p, &sampler), MOE_ERR_INVALID_ARGUMENT, "min_p"));
    CHECK(failed_with(moe_sampler_new(NULL, NULL), MOE_ERR_NULL_ARGUMENT, "out"));
    CHECK(sampler == SENTINEL_SAMPLER);

    p = moe_sampler_default_params();
    p.temperature = 0.8f;
    p.top_k = 20;
    p.seed = 42;
    sampler = NULL;
    CHECK(moe_sampler_new(&p, &sampler) == MOE_OK && sampler != NULL);
    float *logits = (float *)calloc(vocab, sizeof(float));
    if (logits == NULL) {
        return;
    }
    logits[vocab - 1] = 50.0f;
    uint32_t token = 12345;
    CHECK(failed_with(moe_sampler_sample(sampler, NULL, vocab, NULL, 0, &token), MOE_ERR_NULL_ARGUMENT, "logits"));
    CHECK(failed_with(moe_sampler_sample(sampler, logits, 0, NULL, 0, &token), MOE_ERR_BUFFER_SIZE, NULL));
    CHECK(failed_with(moe_sampler_sample(sampler, logits, vocab, NULL, 3, &token), MOE_ERR_NULL_ARGUMENT, "history"));
    CHECK(failed_with(moe_sampler_sample(sampler, logits, vocab, NULL, 0, NULL), MOE_ERR_NULL_ARGUMENT, "out_token"));
    CHECK(token == 12345);
    CHECK(moe_sampler_sample(sampler, logits, vocab, NULL, 0, &token) == MOE_OK && token == vocab - 1);
    moe_sampler_free(sampler);
    CHECK(failed_with(moe_sampler_sample(sampler, logits, vocab, NULL, 0, &token), MOE_ERR_INVALID_HANDLE, NULL));
    moe_sampler_free(sampler);
    moe_sampler_free(NULL);
    free(logits);
}

static void model_lifetime(const char *dir) {
    moe_model *model = NULL;
    moe_session *session = NULL;
    CHECK(moe_model_load(dir, NULL, &model) == MOE_OK);
    CHECK(moe_session_new(model, NULL, &session) == MOE_OK);
    const uint32_t vocab = moe_model_vocab_size(model);
    moe_model_free(model);
    /* The session keeps the weights alive; the freed model handle is refused. */
    CHECK(moe_model_vocab_size(model) == 0);
    CHECK(strstr(moe_last_error(), "not a live moe_model") != NULL);
    moe_model_free(model);
    const uint32_t token = 1;
    float *logits = (float *)malloc(vocab * sizeof(float));
    if (logits != NULL) {
        CHECK(moe_session_prefill(session, &token, 1, logits, vocab) == MOE_OK);
    }
    free(logits);
    moe_session_free(session);
}

static size_t progress_calls = 0;
static void on_progress(size_t done, size_t total, void *user_data) {
    CHECK(user_data == (void *)&progress_calls && done >= 1 && done <= total);
    progress_calls++;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    statuses();
    loading();
    model_getters();

    moe_model_params mp = moe_model_default_params();
    mp.progress = on_progress;
    mp.progress_user_data = &progress_calls;
    moe_model *model = NULL;
    moe_status s = moe_model_load(argv[1], &mp, &model);
    CHECK(s == MOE_OK && model != NULL);
    if (s != MOE_OK) {
        printf("misuse: %d passed, %d failed\n", passed, failed);
        return 1;
    }
    CHECK(progress_calls > 0);
    CHECK(moe_model_architecture(model) != NULL && moe_model_family(model) != NULL);
    CHECK(moe_model_max_context(model) > 0);
    const uint32_t *eos = NULL;
    size_t n_eos = 0;
    CHECK(moe_model_eos_tokens(model, &eos, &n_eos) == MOE_OK);
    CHECK(n_eos == 0 || (eos != NULL && eos[0] < moe_model_vocab_size(model)));

    sessions(model);
    batches(model, argv[1]);
    snapshots(model);
    samplers(model);
    moe_model_free(model);
    model_lifetime(argv[1]);

    printf("misuse: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
