/* Unit tests for config/cfg_yaml.c: the node tree, lines, nulls and reader limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/cfg_int.h"

static struct cfg_node *parse_ok(const char *text)
{
    char err[CFG_ERR_LEN];
    struct cfg_node *root = NULL;
    if (cfg_yaml_parse("t.yaml", text, strlen(text), &root, err) != 0)
        fail_msg("%s", err);
    return root;
}

static void test_yaml_tree(void **state)
{
    struct cfg_node *root = parse_ok("# c\na: 1\nb:\n  - x\n  - 'y'\nc: {d: ~, e: \"\"}\n");
    assert_non_null(root);
    assert_int_equal(root->type, CFG_NODE_MAP);
    assert_int_equal(root->n, 3);
    assert_int_equal(cfg_node_key_line(root, "a"), 2);
    assert_int_equal(cfg_node_key_line(root, "b"), 3);
    assert_int_equal(cfg_node_key_line(root, "zz"), root->line);
    const struct cfg_node *a = cfg_node_get(root, "a");
    assert_int_equal(a->type, CFG_NODE_SCALAR);
    assert_string_equal(a->str, "1");
    assert_int_equal(a->line, 2);
    const struct cfg_node *b = cfg_node_get(root, "b");
    assert_int_equal(b->type, CFG_NODE_SEQ);
    assert_int_equal(b->n, 2);
    assert_int_equal(b->kids[1]->line, 5);
    assert_true(b->kids[0]->plain);
    assert_false(b->kids[1]->plain);
    const struct cfg_node *c = cfg_node_get(root, "c");
    assert_true(cfg_node_is_null(cfg_node_get(c, "d")));
    /* A quoted empty string is a value, not null. */
    assert_false(cfg_node_is_null(cfg_node_get(c, "e")));
    assert_null(cfg_node_get(c, "zz"));
    assert_null(cfg_node_get(b, "x"));
    assert_null(cfg_node_get(NULL, "x"));
    cfg_node_zero_lines(root);
    assert_int_equal(cfg_node_key_line(root, "b"), 0);
    assert_int_equal(b->kids[1]->line, 0);
    cfg_node_free(root);
    assert_null(parse_ok(""));
    assert_null(parse_ok("# only comments\n"));
}

static void test_yaml_rejects(void **state)
{
    static const struct {
        const char *text, *want;
    } rows[] = {
        {"a: 1\na: 2\n", "t.yaml:2: a: duplicate key"},
        {"a: {b: 1, b: 2}\n", "t.yaml:1: a.b: duplicate key"},
        {"a: [1, &x 2]\n", "t.yaml:1: a[1]: anchors (&) are not supported"},
        {"a: [1, *x]\n", "t.yaml:1: a[1]: aliases (*) are not supported"},
        {"a:\n  <<: {b: 1}\n", "t.yaml:2: a: merge keys (<<) are not supported"},
        {"a: !custom 1\n", "t.yaml:1: a: tags (!) are not supported"},
        {"a: 1\n---\nb: 2\n", "t.yaml:2: only one YAML document is allowed"},
        {"a: \"\\0\"\n", "t.yaml:1: a: value contains a NUL byte"},
        {"a: [\n", "t.yaml:2: invalid YAML: "},
        {"a:\tb\n\x01", "t.yaml:2: invalid YAML: control characters are not allowed"},
    };
    char err[CFG_ERR_LEN];
    for (size_t i = 0; i < nitems(rows); i++) {
        struct cfg_node *root = NULL;
        assert_int_equal(cfg_yaml_parse("t.yaml", rows[i].text, strlen(rows[i].text), &root, err),
                         -1);
        assert_null(root);
        if (strncmp(err, rows[i].want, strlen(rows[i].want)) != 0)
            fail_msg("row %zu: got \"%s\" want \"%s\"", i, err, rows[i].want);
    }
}

static void test_yaml_limits(void **state)
{
    char err[CFG_ERR_LEN];
    struct cfg_node *root = NULL;
    size_t n = CFG_MAX_SCALAR + 1;
    char *text = malloc(n + 8);
    memcpy(text, "a: ", 3);
    memset(text + 3, 'x', n);
    text[3 + n] = '\n';
    assert_int_equal(cfg_yaml_parse("t.yaml", text, n + 4, &root, err), -1);
    assert_string_equal(err, "t.yaml:1: a: value longer than 4096 bytes");
    free(text);

    /* One more entry than allowed in a single list. */
    size_t cap = 8 + 3 * (CFG_MAX_ENTRIES + 1);
    text = malloc(cap);
    size_t len = 0;
    text[len++] = '[';
    for (size_t i = 0; i <= CFG_MAX_ENTRIES; i++) {
        memcpy(text + len, "1, ", 3);
        len += 3;
    }
    text[len++] = ']';
    assert_int_equal(cfg_yaml_parse("t.yaml", text, len, &root, err), -1);
    assert_string_equal(err, "t.yaml:1: [4096]: more than 4096 entries");
    free(text);
}

/* Called from test_config.c's main: one executable per module. */
int run_yaml_tests(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_yaml_tree),
        cmocka_unit_test(test_yaml_rejects),
        cmocka_unit_test(test_yaml_limits),
    };
    return _cmocka_run_group_tests("cfg_yaml", tests, nitems(tests), NULL, NULL);
}
