/*
 * config YAML reader: drives the libyaml event parser and builds a plain node
 * tree (maps, lists, scalars) that remembers the line of every node and key.
 * It refuses the YAML features a configuration does not need and that hide
 * where a value came from: anchors, aliases, merge keys and tags. It also
 * enforces the size, depth and duplicate-key rules, so the schema code only
 * ever sees a small, unambiguous tree.
 */
#include "config/cfg_int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

struct frame {
    struct cfg_node *node; /* map or list being filled */
    char *key;             /* map: key waiting for its value (owned), else NULL */
    unsigned key_line;
};

struct builder {
    const char *label;
    char *err;
    struct frame st[CFG_MAX_DEPTH + 1];
    size_t depth;
    struct cfg_node *root;
    int docs;
};

void cfg_node_free(struct cfg_node *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++) {
        cfg_node_free(n->kids[i]);
        if (n->keys != NULL)
            free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
    free(n->key_lines);
    free(n->str);
    free(n);
}

const struct cfg_node *cfg_node_get(const struct cfg_node *map, const char *key)
{
    if (map == NULL || map->type != CFG_NODE_MAP)
        return NULL;
    for (size_t i = 0; i < map->n; i++) {
        if (strcmp(map->keys[i], key) == 0)
            return map->kids[i];
    }
    return NULL;
}

unsigned cfg_node_key_line(const struct cfg_node *map, const char *key)
{
    if (map == NULL)
        return 0;
    if (map->type == CFG_NODE_MAP) {
        for (size_t i = 0; i < map->n; i++) {
            if (strcmp(map->keys[i], key) == 0)
                return map->key_lines[i];
        }
    }
    return map->line;
}

bool cfg_node_is_null(const struct cfg_node *n)
{
    if (n == NULL || n->type != CFG_NODE_SCALAR || !n->plain)
        return false;
    return strcmp(n->str, "") == 0 || strcmp(n->str, "~") == 0 || strcmp(n->str, "null") == 0 ||
           strcmp(n->str, "Null") == 0 || strcmp(n->str, "NULL") == 0;
}

void cfg_node_zero_lines(struct cfg_node *n)
{
    if (n == NULL)
        return;
    n->line = 0;
    for (size_t i = 0; i < n->n; i++) {
        if (n->key_lines != NULL)
            n->key_lines[i] = 0;
        cfg_node_zero_lines(n->kids[i]);
    }
}

/* The dotted path of the value the builder is about to place, for errors. */
static void builder_path(const struct builder *b, char out[CFG_PATH_LEN])
{
    char tmp[CFG_PATH_LEN];
    out[0] = '\0';
    for (size_t i = 0; i < b->depth; i++) {
        const struct frame *f = &b->st[i];
        if (f->node->type == CFG_NODE_MAP && f->key != NULL) {
            cfg_path_join(tmp, out, f->key);
            memcpy(out, tmp, CFG_PATH_LEN);
        } else if (f->node->type == CFG_NODE_SEQ) {
            snprintf(tmp, sizeof(tmp), "%s[%zu]", out, f->node->n);
            memcpy(out, tmp, CFG_PATH_LEN);
        }
    }
}

static int builder_fail(struct builder *b, unsigned line, const char *extra_key, const char *msg)
{
    char path[CFG_PATH_LEN], full[CFG_PATH_LEN];
    builder_path(b, path);
    if (extra_key != NULL)
        cfg_path_join(full, path, extra_key);
    else
        memcpy(full, path, sizeof(full));
    if (full[0] != '\0')
        snprintf(b->err, CFG_ERR_LEN, "%s:%u: %s: %s", b->label, line, full, msg);
    else
        snprintf(b->err, CFG_ERR_LEN, "%s:%u: %s", b->label, line, msg);
    return -1;
}

static void node_push(struct cfg_node *parent, struct cfg_node *kid, char *key, unsigned key_line)
{
    if (parent->n == parent->cap) {
        parent->cap = parent->cap == 0 ? 8 : parent->cap * 2;
        parent->kids = xrealloc(parent->kids, parent->cap * sizeof(*parent->kids));
        if (parent->type == CFG_NODE_MAP) {
            parent->keys = xrealloc(parent->keys, parent->cap * sizeof(*parent->keys));
            parent->key_lines =
                xrealloc(parent->key_lines, parent->cap * sizeof(*parent->key_lines));
        }
    }
    parent->kids[parent->n] = kid;
    if (parent->type == CFG_NODE_MAP) {
        parent->keys[parent->n] = key;
        parent->key_lines[parent->n] = key_line;
    }
    parent->n++;
}

/* Places a finished scalar, map or list under the current frame (or as the root). */
static int builder_attach(struct builder *b, struct cfg_node *n)
{
    if (b->depth == 0) {
        b->root = n;
        return 0;
    }
    struct frame *f = &b->st[b->depth - 1];
    if (f->node->n >= CFG_MAX_ENTRIES) {
        unsigned line = n->line;
        cfg_node_free(n);
        return builder_fail(b, line, NULL, "more than 4096 entries");
    }
    if (f->node->type == CFG_NODE_SEQ) {
        node_push(f->node, n, NULL, 0);
        return 0;
    }
    if (f->key == NULL) {
        unsigned line = n->line;
        cfg_node_free(n);
        return builder_fail(b, line, NULL, "map keys must be plain strings");
    }
    node_push(f->node, n, f->key, f->key_line);
    f->key = NULL;
    return 0;
}

/* A scalar in key position: checked for merge keys and duplicates, then held. */
static int builder_key(struct builder *b, const yaml_event_t *ev, unsigned line)
{
    struct frame *f = &b->st[b->depth - 1];
    const char *k = (const char *)ev->data.scalar.value;
    if (ev->data.scalar.plain_implicit && strcmp(k, "<<") == 0)
        return builder_fail(b, line, NULL, "merge keys (<<) are not supported");
    for (size_t i = 0; i < f->node->n; i++) {
        if (strcmp(f->node->keys[i], k) == 0)
            return builder_fail(b, line, k, "duplicate key");
    }
    f->key = xstrndup(k, ev->data.scalar.length);
    f->key_line = line;
    return 0;
}

static int builder_scalar(struct builder *b, const yaml_event_t *ev, unsigned line)
{
    if (ev->data.scalar.length > CFG_MAX_SCALAR)
        return builder_fail(b, line, NULL, "value longer than 4096 bytes");
    if (strlen((const char *)ev->data.scalar.value) != ev->data.scalar.length)
        return builder_fail(b, line, NULL, "value contains a NUL byte");
    if (b->depth > 0 && b->st[b->depth - 1].node->type == CFG_NODE_MAP &&
        b->st[b->depth - 1].key == NULL)
        return builder_key(b, ev, line);
    struct cfg_node *n = xcalloc(1, sizeof(*n));
    n->type = CFG_NODE_SCALAR;
    n->line = line;
    n->str = xstrndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
    n->plain = ev->data.scalar.plain_implicit != 0;
    return builder_attach(b, n);
}

static int builder_open(struct builder *b, enum cfg_node_type type, unsigned line)
{
    if (b->depth >= CFG_MAX_DEPTH)
        return builder_fail(b, line, NULL, "nesting deeper than 32 levels");
    if (b->depth > 0 && b->st[b->depth - 1].node->type == CFG_NODE_MAP &&
        b->st[b->depth - 1].key == NULL)
        return builder_fail(b, line, NULL, "map keys must be plain strings");
    struct cfg_node *n = xcalloc(1, sizeof(*n));
    n->type = type;
    n->line = line;
    b->st[b->depth].node = n;
    b->st[b->depth].key = NULL;
    b->depth++;
    return 0;
}

static int builder_close(struct builder *b)
{
    b->depth--;
    return builder_attach(b, b->st[b->depth].node);
}

/* Rejects anchors and tags, which every node event may carry. */
static int check_props(struct builder *b, const yaml_event_t *ev, unsigned line)
{
    const yaml_char_t *anchor = NULL, *tag = NULL;
    if (ev->type == YAML_SCALAR_EVENT) {
        anchor = ev->data.scalar.anchor;
        tag = ev->data.scalar.tag;
    } else if (ev->type == YAML_MAPPING_START_EVENT) {
        anchor = ev->data.mapping_start.anchor;
        tag = ev->data.mapping_start.tag;
    } else if (ev->type == YAML_SEQUENCE_START_EVENT) {
        anchor = ev->data.sequence_start.anchor;
        tag = ev->data.sequence_start.tag;
    }
    if (anchor != NULL)
        return builder_fail(b, line, NULL, "anchors (&) are not supported");
    if (tag != NULL)
        return builder_fail(b, line, NULL, "tags (!) are not supported");
    return 0;
}

static int builder_event(struct builder *b, const yaml_event_t *ev)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    if (check_props(b, ev, line) != 0)
        return -1;
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (++b->docs > 1)
            return builder_fail(b, line, NULL, "only one YAML document is allowed");
        return 0;
    case YAML_ALIAS_EVENT:
        return builder_fail(b, line, NULL, "aliases (*) are not supported");
    case YAML_SCALAR_EVENT:
        return builder_scalar(b, ev, line);
    case YAML_MAPPING_START_EVENT:
        return builder_open(b, CFG_NODE_MAP, line);
    case YAML_SEQUENCE_START_EVENT:
        return builder_open(b, CFG_NODE_SEQ, line);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        return builder_close(b);
    default:
        return 0;
    }
}

/* Reader errors (bad UTF-8, control bytes) carry a byte offset instead of a mark. */
static size_t problem_line(const yaml_parser_t *p, const char *text, size_t len)
{
    size_t line = 1;
    if (p->error != YAML_READER_ERROR)
        return p->problem_mark.line + 1;
    for (size_t i = 0; i < p->problem_offset && i < len; i++)
        line += text[i] == '\n';
    return line;
}

int cfg_yaml_parse(const char *label, const char *text, size_t len, struct cfg_node **root,
                   char err[CFG_ERR_LEN])
{
    int rc = -1;
    yaml_parser_t parser;
    yaml_event_t ev;
    struct builder b = {.label = label, .err = err};
    bool done = false;

    *root = NULL;
    if (len > CFG_MAX_FILE) {
        snprintf(err, CFG_ERR_LEN, "%s: larger than %d bytes", label, CFG_MAX_FILE);
        return -1;
    }
    if (yaml_parser_initialize(&parser) == 0) {
        snprintf(err, CFG_ERR_LEN, "%s: cannot initialise the YAML parser", label);
        return -1;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    while (!done) {
        if (yaml_parser_parse(&parser, &ev) == 0) {
            snprintf(err, CFG_ERR_LEN, "%s:%zu: invalid YAML: %s", label,
                     problem_line(&parser, text, len),
                     parser.problem != NULL ? parser.problem : "syntax error");
            goto out;
        }
        done = ev.type == YAML_STREAM_END_EVENT;
        int r = builder_event(&b, &ev);
        yaml_event_delete(&ev);
        if (r != 0)
            goto out;
    }
    *root = b.root;
    b.root = NULL;
    rc = 0;
out:
    /* On failure the open frames own partial trees that were never attached. */
    while (b.depth > 0) {
        b.depth--;
        free(b.st[b.depth].key);
        cfg_node_free(b.st[b.depth].node);
    }
    cfg_node_free(b.root);
    yaml_parser_delete(&parser);
    return rc;
}

int cfg_yaml_load_file(const char *path, struct cfg_node **root, char err[CFG_ERR_LEN])
{
    int rc = -1;
    FILE *f = NULL;
    char *text = xmalloc(CFG_MAX_FILE + 1);
    size_t len = 0;

    *root = NULL;
    f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, CFG_ERR_LEN, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    /* Read one byte past the limit so an oversized file is noticed without stat races. */
    len = fread(text, 1, CFG_MAX_FILE + 1, f);
    if (ferror(f)) {
        snprintf(err, CFG_ERR_LEN, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    if (len > CFG_MAX_FILE) {
        snprintf(err, CFG_ERR_LEN, "%s: larger than %d bytes", path, CFG_MAX_FILE);
        goto out;
    }
    rc = cfg_yaml_parse(path, text, len, root, err);
out:
    if (f != NULL)
        fclose(f);
    free(text);
    return rc;
}
