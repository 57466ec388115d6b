/*
 * config internals: the YAML node tree (cfg_yaml.c), the schema tables that
 * describe each section (cfg_schema.c), and the section descriptors that the
 * loader (cfg_load.c) walks. Adding a section means writing cfg_<section>.c
 * with a key table and a `struct cfg_section`, and listing it in
 * cfg_sections.c. Included only by config/ sources and its unit tests.
 */
#ifndef ACMESRV_CFG_INT_H
#define ACMESRV_CFG_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

#define CFG_MAX_FILE (1024 * 1024) /* bytes of YAML we read */
#define CFG_MAX_DEPTH 32           /* nested maps/lists */
#define CFG_MAX_SCALAR 4096        /* bytes in one key or value */
#define CFG_MAX_ENTRIES 4096       /* entries in one map or list */
#define CFG_PATH_LEN 256           /* "enrollment_policies.x.identifiers[3]" */

/* ---- node tree (cfg_yaml.c) ---- */

enum cfg_node_type { CFG_NODE_SCALAR, CFG_NODE_MAP, CFG_NODE_SEQ };

struct cfg_node {
    enum cfg_node_type type;
    unsigned line;           /* 1-based; 0 for built-in text */
    char *str;               /* scalar text (NUL-terminated), NULL otherwise */
    bool plain;              /* scalar was unquoted, so "~"/"null"/"" mean null */
    size_t n;                /* entries of a map or list */
    size_t cap;
    struct cfg_node **kids;  /* values of a map, items of a list */
    char **keys;             /* map keys, NULL for lists */
    unsigned *key_lines;     /* 1-based line of each map key */
};

/*
 * Parses len bytes of YAML. label names the source in errors ("FILE:LINE:
 * key.path: problem"). *root is NULL for an empty document. Rejects anchors,
 * aliases, tags, merge keys, duplicate keys, several documents, nesting deeper
 * than CFG_MAX_DEPTH and oversized scalars or maps. 0/-1.
 */
int cfg_yaml_parse(const char *label, const char *text, size_t len, struct cfg_node **root,
                   char err[CFG_ERR_LEN]);
/* Reads path (at most CFG_MAX_FILE bytes) and parses it with path as the label. 0/-1. */
int cfg_yaml_load_file(const char *path, struct cfg_node **root, char err[CFG_ERR_LEN]);
void cfg_node_free(struct cfg_node *n);
/* The value under key in map, or NULL (also when map is NULL or not a map). Borrowed. */
const struct cfg_node *cfg_node_get(const struct cfg_node *map, const char *key);
/* The line of key in map, or the map's own line when the key is absent. */
unsigned cfg_node_key_line(const struct cfg_node *map, const char *key);
/* True for an unquoted "", "~", "null" scalar. */
bool cfg_node_is_null(const struct cfg_node *n);
/* Sets every line in the tree to 0, for trees parsed from built-in text. */
void cfg_node_zero_lines(struct cfg_node *n);

/* ---- schema tables (cfg_schema.c) ---- */

struct cfg_ctx {
    const char *file; /* label for errors: the path as given */
    const char *dir;  /* absolute directory relative paths resolve against; NULL = keep */
    char *err;        /* CFG_ERR_LEN sink */
    struct cfg *cfg;  /* what is being built; sections loaded earlier are complete */
};

enum cfg_type {
    CFG_T_STRING,   /* scalar; `check` may validate it */
    CFG_T_INT,      /* decimal in [min,max]; CFG_K_AUTO adds "auto" = 0 */
    CFG_T_BOOL,     /* true | false */
    CFG_T_DURATION, /* clk_parse_duration() seconds in [min,max] */
    CFG_T_DURATION_MS, /* milliseconds ("250", "250ms") or a duration ("2s") in [min,max] ms */
    CFG_T_SIZE,     /* bytes, optional k/m/g suffix, in [min,max] */
    CFG_T_ENUM,     /* one of `names`; stores the index, or a copy for char * fields */
    CFG_T_FLAGS,    /* list of `names`; stores OR of 1u << index; at least `min` items */
    CFG_T_LIST,     /* list of strings into char ** plus a size_t count at `aux` */
    CFG_T_MAP,      /* nested map described by `sub`, writing into the same struct */
    CFG_T_CUSTOM,   /* `parse` does the work */
};

/* How the field at `offset` is stored; picked by CFG_STORE() from the member type. */
enum cfg_store { CFG_S_INT, CFG_S_I64, CFG_S_SIZE, CFG_S_UINT, CFG_S_BOOL, CFG_S_STR, CFG_S_STRV };

#define CFG_K_PATH 0x01u     /* relative value resolves against ctx->dir */
#define CFG_K_REQUIRED 0x02u /* the key must appear */
#define CFG_K_AUTO 0x04u     /* CFG_T_INT: "auto" means 0 */

struct cfg_key;
/* Validates a string value; NULL when fine, else "expected ..." text. */
typedef const char *cfg_check_fn(const char *value);
/* Parses node into base for CFG_T_CUSTOM keys. 0/-1 with ctx->err set. */
typedef int cfg_parse_fn(struct cfg_ctx *ctx, const struct cfg_key *key,
                         const struct cfg_node *node, const char *path, void *base);

struct cfg_key {
    const char *name;              /* YAML key; NULL ends a table */
    enum cfg_type type;
    const char *def;               /* default as YAML text ("90d", "[dns, ip]"); NULL = none */
    long long min, max;            /* numeric range; minimum items for CFG_T_FLAGS */
    const char *const *names;      /* NULL-terminated values of ENUM/FLAGS */
    size_t offset;                 /* field in the section struct */
    enum cfg_store store;
    size_t aux;                    /* CFG_T_LIST: offset of the size_t count */
    unsigned flags;                /* CFG_K_* */
    const struct cfg_key *sub;     /* CFG_T_MAP table */
    cfg_check_fn *check;           /* CFG_T_STRING validator */
    cfg_parse_fn *parse;           /* CFG_T_CUSTOM parser */
};

#define CFG_STORE(st, m)                                                                           \
    _Generic(((st *)0)->m, int: CFG_S_INT, int64_t: CFG_S_I64, size_t: CFG_S_SIZE,                 \
             unsigned: CFG_S_UINT, bool: CFG_S_BOOL, char *: CFG_S_STR, char **: CFG_S_STRV)
#define CFG_FIELD(st, m) .offset = offsetof(st, m), .store = CFG_STORE(st, m)

/*
 * Formats "FILE:LINE: path: message" (or "FILE: path: ..." when line is 0)
 * into ctx->err. Always returns -1 so callers can `return cfg_fail(...)`.
 */
int cfg_fail(struct cfg_ctx *ctx, unsigned line, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Writes "prefix.key" (key escaped and bounded) into out[CFG_PATH_LEN]. Returns out. */
char *cfg_path_join(char out[CFG_PATH_LEN], const char *prefix, const char *key);
/* Sets every key of the table that has a default. 0/-1. */
int cfg_schema_defaults(struct cfg_ctx *ctx, const struct cfg_key *keys, void *base,
                        const char *path);
/* Checks map against the table and stores each value; unknown keys are errors. 0/-1. */
int cfg_schema_apply(struct cfg_ctx *ctx, const struct cfg_key *keys, const struct cfg_node *map,
                     void *base, const char *path);
/* Frees every string and list the table owns in base. */
void cfg_schema_free(const struct cfg_key *keys, void *base);
/* Parses a list of names into a bitmask (1u << index), at least min items. 0/-1. */
int cfg_parse_flags(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                    const char *const *names, long long min, unsigned *out);
/* Shared string validators. */
const char *cfg_check_hostport(const char *s);
const char *cfg_check_url(const char *s);
const char *cfg_check_name(const char *s); /* [a-z0-9][a-z0-9-]{0,31} */
const char *cfg_check_name_us(const char *s); /* [a-z0-9][a-z0-9_-]{0,31} (cfg_signal_sources.c) */

/* ---- sections (cfg_<section>.c, listed in cfg_sections.c) ---- */

struct cfg_section {
    const char *name;            /* top-level YAML key */
    const struct cfg_key *keys;  /* schema of the section, or of each entry when keyed */
    bool keyed;                  /* a map NAME -> entry, stored as an array in struct cfg */
    size_t offset;               /* single: the section struct in struct cfg;
                                    keyed: the array pointer in struct cfg */
    size_t count_off;            /* keyed: the size_t count in struct cfg */
    size_t elem_size;            /* keyed: sizeof one entry */
    size_t name_off;             /* keyed: the char *name field in an entry */
    const char *fallback;        /* keyed: YAML entries used when the section is absent;
                                    NULL = the section is optional and may be empty */
    /* keyed: validates entry names; NULL = cfg_check_name */
    cfg_check_fn *name_check;
    /* frees what CFG_T_CUSTOM keys of an entry (or a single section) own; NULL = nothing */
    void (*free_entry)(void *base);
    /* After an entry (or the single section) is parsed; node may be NULL. 0/-1. */
    int (*check)(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path, void *base);
};

extern const struct cfg_section cfg_section_server;
extern const struct cfg_section cfg_section_storage;
extern const struct cfg_section cfg_section_acme;
extern const struct cfg_section cfg_section_attestation;
extern const struct cfg_section cfg_section_cas;
extern const struct cfg_section cfg_section_policies;
extern const struct cfg_section cfg_section_signal_sources;
extern const struct cfg_section cfg_section_templates;
extern const struct cfg_section cfg_section_roles;
extern const struct cfg_section cfg_section_events;

/*
 * Cross-checks of an enrollment policy against the templates and device_roles
 * it names (cfg_templates.c, cfg_roles.c); called from the policy check. 0/-1.
 */
int cfg_policy_check_template(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                              const struct cfg_policy *p);
int cfg_policy_check_roles(struct cfg_ctx *ctx, const struct cfg_node *node, const char *path,
                           const struct cfg_policy *p);

/* In load order: sections may look at those before them through ctx->cfg. */
extern const struct cfg_section *const cfg_sections[];
extern const size_t cfg_nsections;

#endif
