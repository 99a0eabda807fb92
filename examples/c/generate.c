/*
 * generate: loads a model, prefills a prompt of token ids, generates N tokens greedily and prints
 * them, each with its logit. Valid C11 and C++.
 *
 *   generate [MODEL_DIR [N_NEW [TOKEN_ID ...]]]
 *
 * With no MODEL_DIR it runs the model shipped in the repository (models/tiny-deepseek-pycode, or the
 * fixtures/deepseek_v3 test model when that is absent) on that model's reference prompt, from the
 * repository root. Output lines: "model: ...", "prompt: ID ...", then "token ID LOGIT" per token.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe.h"

/* The token ids of "def fibonacci(n):\n    " in the shipped model's tokenizer. */
static const uint32_t PYCODE_PROMPT[] = {483, 288, 1438, 270, 1183, 512, 8, 78, 308, 199, 258};
/* The reference prompt of the deepseek_v3 fixture. */
static const uint32_t FIXTURE_PROMPT[] = {214, 211, 156, 169, 63,  46,  113, 27,  41,  28,  33,  170,
                                          184, 210, 32,  114, 218, 233, 97,  128, 187, 125, 33,  182};

struct default_model {
    const char *path;
    const uint32_t *prompt;
    size_t n_prompt;
};

static const struct default_model DEFAULTS[] = {
    {"models/tiny-deepseek-pycode", PYCODE_PROMPT, sizeof PYCODE_PROMPT / sizeof PYCODE_PROMPT[0]},
    {"fixtures/deepseek_v3", FIXTURE_PROMPT, sizeof FIXTURE_PROMPT / sizeof FIXTURE_PROMPT[0]},
};

static int fail(const char *what, moe_status s) {
    fprintf(stderr, "generate: %s: %s (%s)\n", what, moe_status_str(s), moe_last_error());
    return 1;
}

static int parse_u32(const char *text, uint32_t *out) {
    char *end = NULL;
    unsigned long v = strtoul(text, &end, 10);
    if (end == text || *end != '\0' || v > 0xFFFFFFFFul) {
        return 0;
    }
    *out = (uint32_t)v;
    return 1;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    uint32_t n_new = 16;
    const uint32_t *prompt = NULL;
    size_t n_prompt = 0;
    uint32_t *owned_prompt = NULL;
    moe_model *model = NULL;
    moe_session *session = NULL;
    moe_sampler *sampler = NULL;
    float *logits = NULL;
    moe_status s = MOE_OK;
    int rc = 1;

    if (argc > 2 && !parse_u32(argv[2], &n_new)) {
        fprintf(stderr, "usage: %s [MODEL_DIR [N_NEW [TOKEN_ID ...]]]\n", argv[0]);
        return 2;
    }
    if (argc > 3) {
        n_prompt = (size_t)(argc - 3);
        owned_prompt = (uint32_t *)malloc(n_prompt * sizeof *owned_prompt);
        if (owned_prompt == NULL) {
            return 1;
        }
        for (size_t i = 0; i < n_prompt; i++) {
            if (!parse_u32(argv[3 + i], &owned_prompt[i])) {
                fprintf(stderr, "generate: bad token id '%s'\n", argv[3 + i]);
                free(owned_prompt);
                return 2;
            }
        }
        prompt = owned_prompt;
    }

    if (argc > 1) {
        path = argv[1];
        s = moe_model_load(path, NULL, &model);
    } else {
        /* The first default model that exists; MOE_ERR_NOT_FOUND moves on to the next. */
        s = MOE_ERR_NOT_FOUND;
        for (size_t i = 0; i < sizeof DEFAULTS / sizeof DEFAULTS[0] && s == MOE_ERR_NOT_FOUND; i++) {
            path = DEFAULTS[i].path;
            prompt = DEFAULTS[i].prompt;
            n_prompt = DEFAULTS[i].n_prompt;
            s = moe_model_load(path, NULL, &model);
        }
    }
    if (s != MOE_OK) {
        rc = fail("loading the model", s);
        goto done;
    }
    if (prompt == NULL) {
        fprintf(stderr, "generate: give the prompt's token ids after MODEL_DIR and N_NEW\n");
        rc = 2;
        goto done;
    }

    {
        const uint32_t vocab = moe_model_vocab_size(model);
        printf("model: %s (%s, %s, vocab %u, context %zu, moe %s)\n", path, moe_model_architecture(model),
               moe_model_family(model), (unsigned)vocab, moe_model_max_context(model), moe_version());
        printf("prompt:");
        for (size_t i = 0; i < n_prompt; i++) {
            printf(" %u", (unsigned)prompt[i]);
        }
        printf("\n");

        logits = (float *)malloc((size_t)vocab * sizeof *logits);
        if (logits == NULL) {
            goto done;
        }
        if ((s = moe_session_new(model, NULL, &session)) != MOE_OK) {
            rc = fail("creating a session", s);
            goto done;
        }
        if ((s = moe_sampler_new(NULL, &sampler)) != MOE_OK) { /* NULL params: greedy */
            rc = fail("creating a sampler", s);
            goto done;
        }
        if ((s = moe_session_prefill(session, prompt, n_prompt, logits, vocab)) != MOE_OK) {
            rc = fail("prefill", s);
            goto done;
        }
        for (uint32_t i = 0; i < n_new; i++) {
            const uint32_t *history = NULL;
            size_t n_history = 0;
            uint32_t token = 0;
            if ((s = moe_session_tokens(session, &history, &n_history)) != MOE_OK ||
                (s = moe_sampler_sample(sampler, logits, vocab, history, n_history, &token)) != MOE_OK) {
                rc = fail("sampling", s);
                goto done;
            }
            printf("token %u %.6f\n", (unsigned)token, (double)logits[token]);
            if (i + 1 < n_new && (s = moe_session_decode(session, token, logits, vocab)) != MOE_OK) {
                rc = fail("decode", s);
                goto done;
            }
        }
        rc = 0;
    }

done:
    free(logits);
    free(owned_prompt);
    moe_sampler_free(sampler);
    moe_session_free(session);
    moe_model_free(model);
    return rc;
}
