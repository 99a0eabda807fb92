/*
 * generate_text: streams the text a model writes after a prompt, piece by piece, through the
 * generation callback. Valid C11 and C++.
 *
 *   generate_text [--model DIR] [--max-tokens N] [--temperature T] [--seed S] [--stop TEXT] [--chat] [PROMPT]
 *
 * Defaults: the shipped model models/tiny-deepseek-pycode (run from the repository root), greedy,
 * 16 tokens, the prompt "def fibonacci(n):\n    ". With --chat the prompt is sent as a user message
 * through the model's chat template. The prompt (unless --chat) and the generated text go to stdout;
 * a summary goes to stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moe.h"

struct stream {
    size_t pieces;
    size_t bytes;
};

/* Called with each new piece of text; returning false would stop generation. */
static bool print_piece(const char *piece, size_t len, void *user_data) {
    struct stream *s = (struct stream *)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    s->pieces++;
    s->bytes += len;
    return true;
}

static int fail(const char *what, moe_status s) {
    fprintf(stderr, "\ngenerate_text: %s: %s (%s)\n", what, moe_status_str(s), moe_last_error());
    return 1;
}

static void on_progress(size_t done, size_t total, void *user_data) {
    (void)user_data;
    fprintf(stderr, "\rloading: layer %zu/%zu", done, total);
    if (done == total) {
        fprintf(stderr, "\n");
    }
}

int main(int argc, char **argv) {
    const char *dir = "models/tiny-deepseek-pycode";
    const char *prompt = "def fibonacci(n):\n    ";
    const char *stop = NULL;
    long max_tokens = 16;
    double temperature = 0.0;
    unsigned long long seed = 0;
    bool chat = false;

    for (int i = 1; i < argc; i++) {
        const bool has_value = i + 1 < argc;
        if (strcmp(argv[i], "--model") == 0 && has_value) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--max-tokens") == 0 && has_value) {
            max_tokens = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--temperature") == 0 && has_value) {
            temperature = strtod(argv[++i], NULL);
        } else if (strcmp(argv[i], "--seed") == 0 && has_value) {
            seed = strtoull(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--stop") == 0 && has_value) {
            stop = argv[++i];
        } else if (strcmp(argv[i], "--chat") == 0) {
            chat = true;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') {
            fprintf(stderr, "generate_text: unknown or incomplete option %s\n", argv[i]);
            return 2;
        } else {
            prompt = argv[i];
        }
    }
    if (max_tokens < 0) {
        fprintf(stderr, "generate_text: --max-tokens must be >= 0\n");
        return 2;
    }

    moe_model_params mp = moe_model_default_params();
    mp.progress = on_progress;
    moe_model *model = NULL;
    moe_session *session = NULL;
    moe_status s = moe_model_load(dir, &mp, &model);
    if (s != MOE_OK) {
        return fail("loading the model", s);
    }
    int rc = 1;
    if ((s = moe_session_new(model, NULL, &session)) != MOE_OK) {
        rc = fail("creating a session", s);
        goto done;
    }

    {
        /* The model's defaults (generation_config.json), then the command line's choices. */
        moe_generate_params gp;
        if ((s = moe_model_default_generate_params(model, &gp)) != MOE_OK) {
            rc = fail("reading generation defaults", s);
            goto done;
        }
        gp.max_new_tokens = (size_t)max_tokens;
        gp.sampler.temperature = (float)temperature;
        gp.sampler.seed = seed;
        const char *stops[1] = {stop};
        if (stop != NULL) {
            gp.stop_strings = stops;
            gp.n_stop_strings = 1;
        }

        struct stream st = {0, 0};
        size_t generated = 0;
        if (chat) {
            moe_chat_message message;
            message.role = "user";
            message.content = prompt;
            s = moe_session_generate_chat(session, &message, 1, &gp, print_piece, &st, &generated);
        } else {
            fputs(prompt, stdout);
            s = moe_session_generate(session, prompt, strlen(prompt), &gp, print_piece, &st, &generated);
        }
        printf("\n");
        if (s != MOE_OK) {
            rc = fail("generation", s);
            goto done;
        }
        fprintf(stderr, "%zu tokens, %zu pieces, %zu bytes of text\n", generated, st.pieces, st.bytes);
        rc = 0;
    }

done:
    moe_session_free(session);
    moe_model_free(model);
    return rc;
}
