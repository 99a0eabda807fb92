/*
 * text_test: the text half of the C API on a model with a tokenizer: tokenize / detokenize with the
 * size-reporting buffer convention, UTF-8 round trips, streamed generation (complete UTF-8 pieces
 * whose concatenation is the decoded text), stop strings, stopping from the callback, a busy session,
 * and the errors of models without a tokenizer or a chat template; quantization: the model loaded
 * as int4 generates, and, given QUANTIZED_OUT_DIR (absent or empty), the checkpoint written there by
 * moe_checkpoint_quantize reloads and generates the same text. Valid C11 and C++.
 *
 *   text_test MODEL_DIR NO_TOKENIZER_MODEL_DIR [QUANTIZED_OUT_DIR]
 *   (e.g. models/tiny-deepseek-pycode fixtures/deepseek_v3 /tmp/q4)
 *
 * Prints each failed check and "text: N passed, M failed"; exits non-zero on any failure.
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

static const char PROMPT[] = "def fibonacci(n):\n    ";
/* The shipped model's tokens for PROMPT and the text of its 16 greedy tokens (see its README). */
static const uint32_t PROMPT_IDS[] = {483, 288, 1438, 270, 1183, 512, 8, 78, 308, 199, 258};
static const char CONTINUATION[] = " z = z.zip.Z == zipfile.ZipFile";

/* Whether `s` (n bytes) is a sequence of complete UTF-8 characters (lead bytes, lengths and
 * continuation bytes; enough to catch a character cut in two). */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        const unsigned c = s[i];
        size_t extra = 0;
        if (c < 0x80) {
            extra = 0;
        } else if (c >= 0xC2 && c <= 0xDF) {
            extra = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            extra = 2;
        } else if (c >= 0xF0 && c <= 0xF4) {
            extra = 3;
        } else {
            return 0;
        }
        if (n - i <= extra) {
            return 0;
        }
        for (size_t k = 1; k <= extra; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += extra + 1;
    }
    return 1;
}

struct collected {
    char text[8192];
    size_t len;
    size_t pieces;
    int all_valid;
    int all_terminated;
    size_t stop_after; /* 0: never stop */
    moe_session *session; /* when set, the callback tries to use it */
    moe_status busy_status;
};

static void collected_init(struct collected *c) {
    memset(c, 0, sizeof *c);
    c->all_valid = 1;
    c->all_terminated = 1;
    c->busy_status = MOE_OK;
}

static bool collect(const char *piece, size_t len, void *user_data) {
    struct collected *c = (struct collected *)user_data;
    c->all_valid &= valid_utf8((const unsigned char *)piece, len) && len > 0;
    c->all_terminated &= piece[len] == '\0';
    if (c->len + len < sizeof c->text) {
        memcpy(c->text + c->len, piece, len);
        c->len += len;
        c->text[c->len] = '\0';
    }
    c->pieces++;
    if (c->session != NULL) {
        c->busy_status = moe_session_reset(c->session);
        moe_session_free(c->session); /* refused while generating */
    }
    return c->stop_after == 0 || c->pieces < c->stop_after;
}

static void tokenizing(moe_model *model) {
    CHECK(moe_model_has_tokenizer(model));
    size_t n = 0;
    CHECK(moe_model_tokenize(model, PROMPT, strlen(PROMPT), true, NULL, 0, &n) == MOE_ERR_BUFFER_TOO_SMALL);
    CHECK(n == sizeof PROMPT_IDS / sizeof PROMPT_IDS[0]);
    uint32_t ids[64];
    for (size_t i = 0; i < 64; i++) {
        ids[i] = 7777;
    }
    size_t got = 0;
    CHECK(moe_model_tokenize(model, PROMPT, strlen(PROMPT), true, ids, n - 1, &got) == MOE_ERR_BUFFER_TOO_SMALL);
    CHECK(got == n && ids[0] == 7777);
    CHECK(moe_model_tokenize(model, PROMPT, strlen(PROMPT), true, ids, 64, &got) == MOE_OK && got == n);
    CHECK(memcmp(ids, PROMPT_IDS, sizeof PROMPT_IDS) == 0);

    size_t len = 0;
    char text[256];
    memset(text, 'x', sizeof text);
    CHECK(moe_model_detokenize(model, ids, n, true, NULL, 0, &len) == MOE_ERR_BUFFER_TOO_SMALL);
    CHECK(len == strlen(PROMPT));
    CHECK(moe_model_detokenize(model, ids, n, true, text, len, &len) == MOE_ERR_BUFFER_TOO_SMALL);
    CHECK(text[0] == 'x');
    CHECK(moe_model_detokenize(model, ids, n, true, text, len + 1, &len) == MOE_OK);
    CHECK(strcmp(text, PROMPT) == 0);

    const char *unicode = "h\xc3\xa9llo \xe2\x9c\x93 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\xa6\x80";
    CHECK(moe_model_tokenize(model, unicode, strlen(unicode), false, ids, 64, &got) == MOE_OK && got > 0);
    CHECK(moe_model_detokenize(model, ids, got, false, text, sizeof text, &len) == MOE_OK);
    CHECK(len == strlen(unicode) && strcmp(text, unicode) == 0);

    const char bad[] = {'a', (char)0xff};
    n = 99;
    CHECK(moe_model_tokenize(model, bad, 2, true, ids, 64, &n) == MOE_ERR_INVALID_ARGUMENT && n == 99);
    CHECK(strstr(moe_last_error(), "UTF-8") != NULL);
    CHECK(moe_model_tokenize(model, NULL, 3, true, ids, 64, &n) == MOE_ERR_NULL_ARGUMENT);
    CHECK(moe_model_tokenize(model, PROMPT, 3, true, ids, 64, NULL) == MOE_ERR_NULL_ARGUMENT);
    const uint32_t huge = 1u << 30;
    CHECK(moe_model_detokenize(model, &huge, 1, true, text, sizeof text, &len) == MOE_ERR_TOKEN_OUT_OF_RANGE);
    CHECK(moe_model_tokenize(NULL, PROMPT, 3, true, ids, 64, &n) == MOE_ERR_NULL_ARGUMENT);
}

static void generating(moe_model *model) {
    moe_session *session = NULL;
    CHECK(moe_session_new(model, NULL, &session) == MOE_OK);
    moe_generate_params p = moe_generate_default_params();
    p.max_new_tokens = 16;
    struct collected c;
    collected_init(&c);
    size_t n = 0;
    CHECK(moe_session_generate(session, PROMPT, strlen(PROMPT), &p, collect, &c, &n) == MOE_OK);
    CHECK(n == 16 && strcmp(c.text, CONTINUATION) == 0);
    CHECK(c.pieces > 1 && c.all_valid && c.all_terminated);
    CHECK(moe_session_len(session) == sizeof PROMPT_IDS / sizeof PROMPT_IDS[0] + 16);

    /* Sampled from a prompt with umlauts, which the model continues with multi-byte characters (split
     * over several byte-level tokens): every piece is complete UTF-8 and the pieces add up to the
     * decoded tokens. Several seeds, so that some run surely writes non-ASCII. */
    const char *umlauts = "# Gr\xc3\xb6\xc3\x9f" "e, Stra\xc3\x9f" "e: \xc3\xa4 \xc3\xb6 \xc3\xbc \xc3\x9f \xc3\xa4";
    int non_ascii_runs = 0;
    for (uint64_t seed = 1; seed <= 6; seed++) {
        CHECK(moe_session_reset(session) == MOE_OK);
        p = moe_generate_default_params();
        p.max_new_tokens = 100;
        p.sampler.temperature = 1.0f;
        p.sampler.seed = seed;
        collected_init(&c);
        CHECK(moe_session_generate(session, umlauts, strlen(umlauts), &p, collect, &c, &n) == MOE_OK && n > 0);
        const uint32_t *tokens = NULL;
        size_t n_tokens = 0, len = 0;
        static char decoded[8192];
        CHECK(moe_session_tokens(session, &tokens, &n_tokens) == MOE_OK && n_tokens > n);
        CHECK(moe_model_detokenize(model, tokens + (n_tokens - n), n, true, decoded, sizeof decoded, &len) == MOE_OK);
        CHECK(c.all_valid && c.all_terminated && c.len == len && strcmp(c.text, decoded) == 0);
        int non_ascii = 0;
        for (size_t i = 0; i < c.len; i++) {
            non_ascii |= (unsigned char)c.text[i] >= 0x80;
        }
        non_ascii_runs += non_ascii;
    }
    CHECK(non_ascii_runs >= 2);

    /* A stop string ends the text before it. */
    CHECK(moe_session_reset(session) == MOE_OK);
    p = moe_generate_default_params();
    p.max_new_tokens = 16;
    const char *stops[2] = {"never appears", "zip"};
    p.stop_strings = stops;
    p.n_stop_strings = 2;
    collected_init(&c);
    CHECK(moe_session_generate(session, PROMPT, strlen(PROMPT), &p, collect, &c, &n) == MOE_OK);
    CHECK(strcmp(c.text, " z = z.") == 0 && n < 16);

    /* The callback stops generation; its calls on the generating session are refused. */
    CHECK(moe_session_reset(session) == MOE_OK);
    p = moe_generate_default_params();
    p.max_new_tokens = 16;
    collected_init(&c);
    c.stop_after = 2;
    c.session = session;
    CHECK(moe_session_generate(session, PROMPT, strlen(PROMPT), &p, collect, &c, &n) == MOE_OK);
    CHECK(c.pieces == 2 && n >= 2 && n < 16);
    CHECK(c.busy_status == MOE_ERR_BUSY);
    CHECK(moe_session_len(session) == sizeof PROMPT_IDS / sizeof PROMPT_IDS[0] + n);

    /* Failures before generation change nothing. */
    const size_t held = moe_session_len(session);
    n = 4242;
    p.sampler.temperature = -1.0f;
    collected_init(&c);
    CHECK(moe_session_generate(session, PROMPT, strlen(PROMPT), &p, collect, &c, &n) == MOE_ERR_INVALID_ARGUMENT);
    p = moe_generate_default_params();
    CHECK(moe_session_generate(session, "", 0, &p, collect, &c, &n) == MOE_ERR_EMPTY_PROMPT);
    CHECK(moe_session_generate(session, NULL, 5, &p, collect, &c, &n) == MOE_ERR_NULL_ARGUMENT);
    p.n_stop_strings = 1; /* with stop_strings NULL */
    CHECK(moe_session_generate(session, PROMPT, strlen(PROMPT), &p, collect, &c, &n) == MOE_ERR_NULL_ARGUMENT);
    CHECK(n == 4242 && c.pieces == 0 && moe_session_len(session) == held);

    /* No chat template on this model. */
    moe_chat_message m;
    m.role = "user";
    m.content = "hi";
    CHECK(!moe_model_has_chat_template(model));
    CHECK(moe_session_generate_chat(session, &m, 1, NULL, collect, &c, &n) == MOE_ERR_TOKENIZER);
    size_t len = 0;
    CHECK(moe_model_apply_chat_template(model, NULL, 1, true, NULL, 0, &len) == MOE_ERR_NULL_ARGUMENT);
    CHECK(moe_session_len(session) == held);

    /* A NULL callback is allowed: the text is in the session's tokens. */
    CHECK(moe_session_reset(session) == MOE_OK);
    p = moe_generate_default_params();
    p.max_new_tokens = 4;
    CHECK(moe_session_generate(session, PROMPT, strlen(PROMPT), &p, NULL, NULL, NULL) == MOE_OK);
    CHECK(moe_session_len(session) == sizeof PROMPT_IDS / sizeof PROMPT_IDS[0] + 4);
    moe_session_free(session);
}

/* Greedy text of 16 tokens after PROMPT from `model` into `c`; returns the token count. */
static size_t greedy_text(moe_model *model, struct collected *c) {
    moe_session *session = NULL;
    size_t n = 0;
    CHECK(moe_session_new(model, NULL, &session) == MOE_OK);
    moe_generate_params p = moe_generate_default_params();
    p.max_new_tokens = 16;
    collected_init(c);
    CHECK(moe_session_generate(session, PROMPT, strlen(PROMPT), &p, collect, c, &n) == MOE_OK);
    moe_session_free(session);
    return n;
}

static void count_progress(size_t done, size_t total, void *user_data) {
    size_t *calls = (size_t *)user_data;
    *calls += done <= total;
}

static void quantizing(const char *dir, const char *out_dir) {
    moe_model_params mp = moe_model_default_params();
    mp.quantize_bits = 4;
    mp.quantize_scope = MOE_QUANTIZE_SCOPE_LINEAR;
    moe_model *model = NULL;
    CHECK(moe_model_load(dir, &mp, &model) == MOE_OK);
    if (model == NULL) {
        return;
    }
    struct collected on_load;
    CHECK(greedy_text(model, &on_load) == 16 && on_load.all_valid && on_load.len > 0);
    moe_model_free(model);

    mp.quantize_bits = 5;
    model = NULL;
    CHECK(moe_model_load(dir, &mp, &model) == MOE_ERR_INVALID_ARGUMENT && model == NULL);
    if (out_dir == NULL) {
        return;
    }
    moe_quantize_params qp = moe_quantize_default_params();
    qp.scope = MOE_QUANTIZE_SCOPE_LINEAR;
    size_t calls = 0;
    qp.progress = count_progress;
    qp.progress_user_data = &calls;
    CHECK(moe_checkpoint_quantize(dir, out_dir, &qp) == MOE_OK && calls > 0);
    CHECK(moe_model_load(out_dir, NULL, &model) == MOE_OK);
    if (model == NULL) {
        return;
    }
    struct collected reloaded;
    CHECK(greedy_text(model, &reloaded) == 16 && strcmp(reloaded.text, on_load.text) == 0);
    moe_model_free(model);
    /* The written checkpoint is already quantized. */
    mp.quantize_bits = 8;
    CHECK(moe_model_load(out_dir, &mp, &model) == MOE_ERR_UNSUPPORTED_QUANTIZATION);
    CHECK(moe_checkpoint_quantize(dir, out_dir, NULL) == MOE_ERR_INVALID_ARGUMENT);
}

static void without_tokenizer(const char *dir) {
    moe_model *model = NULL;
    moe_session *session = NULL;
    CHECK(moe_model_load(dir, NULL, &model) == MOE_OK);
    CHECK(!moe_model_has_tokenizer(model));
    size_t n = 5;
    CHECK(moe_model_tokenize(model, "a", 1, true, NULL, 0, &n) == MOE_ERR_NO_TOKENIZER && n == 5);
    CHECK(moe_session_new(model, NULL, &session) == MOE_OK);
    CHECK(moe_session_generate(session, "a", 1, NULL, NULL, NULL, &n) == MOE_ERR_NO_TOKENIZER);
    CHECK(moe_session_len(session) == 0 && n == 5);
    moe_session_free(session);
    moe_model_free(model);
}

int main(int argc, char **argv) {
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s MODEL_DIR NO_TOKENIZER_MODEL_DIR [QUANTIZED_OUT_DIR]\n", argv[0]);
        return 2;
    }
    moe_model *model = NULL;
    moe_status s = moe_model_load(argv[1], NULL, &model);
    CHECK(s == MOE_OK);
    if (s == MOE_OK) {
        tokenizing(model);
        generating(model);
        moe_model_free(model);
    }
    without_tokenizer(argv[2]);
    quantizing(argv[1], argc == 4 ? argv[3] : NULL);
    printf("text: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
