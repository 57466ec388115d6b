/*
 * pki_san.c: subjectAltName building blocks shared by CSR parsing and
 * issuance: GeneralName construction from template values (DNS, IP, email,
 * URI, permanentIdentifier, UPN, HardwareModuleName) and the RFC 4043
 * PermanentIdentifier and RFC 4108 HardwareModuleName codecs.
 */
#include "pki/pki.h"
#include "pki/pki_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/err.h>

#define SAN_VALUE_MAX 1024
#define DNS_NAME_MAX 253
/* Dotted hwType text; device identifiers are at most 128 bytes in all (DA-3). */
#define HW_TYPE_MAX 128

static bool is_ascii_token(const char *s, size_t max)
{
    size_t n = strnlen(s, max + 1);
    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    }
    return true;
}

/* Well-formed UTF-8 of 1..max bytes without NUL. */
static bool is_utf8(const unsigned char *p, size_t len, size_t max)
{
    unsigned long c;
    if (len == 0 || len > max)
        return false;
    while (len > 0) {
        int n = UTF8_getc(p, (int)len, &c);
        if (n <= 0 || c == 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

int pki_perm_id_parse(const unsigned char *der, size_t len, char **out)
{
    const unsigned char *p = der, *end;
    long l = 0;
    int tag = 0, cls = 0, r;

    *out = NULL;
    if (der == NULL || len == 0 || len > SAN_VALUE_MAX + 64)
        return -1;
    r = ASN1_get_object(&p, &l, &tag, &cls, (long)len);
    /* 0x80: error; 0x01: indefinite length, never valid DER. */
    if ((r & 0x81) != 0 || (r & V_ASN1_CONSTRUCTED) == 0 || tag != V_ASN1_SEQUENCE ||
        cls != V_ASN1_UNIVERSAL || p + l != der + len)
        return -1;
    end = p + l;
    /* Elements in order: optional identifierValue, then optional assigner OID. */
    for (int seen = 0; p < end; seen++) {
        r = ASN1_get_object(&p, &l, &tag, &cls, end - p);
        if ((r & 0x81) != 0 || (r & V_ASN1_CONSTRUCTED) != 0 || cls != V_ASN1_UNIVERSAL)
            goto bad;
        if (tag == V_ASN1_UTF8STRING && seen == 0) {
            if (!is_utf8(p, (size_t)l, SAN_VALUE_MAX))
                goto bad;
            *out = xstrndup((const char *)p, (size_t)l);
        } else if (tag != V_ASN1_OBJECT || l <= 0 || seen > 1 || (seen == 1 && *out == NULL)) {
            /* The assigner OID is skipped; its meaning is not ours to judge. */
            goto bad;
        }
        p += l;
    }
    if (p != end)
        goto bad;
    return 0;
bad:
    free(*out);
    *out = NULL;
    return -1;
}

int pki_hw_module_parse(const unsigned char *der, size_t len, char **out)
{
    const unsigned char *p = der, *end;
    char type[HW_TYPE_MAX + 1];
    ASN1_OBJECT *obj = NULL;
    long l = 0;
    int tag = 0, cls = 0, r, n, rc = -1;

    *out = NULL;
    if (der == NULL || len == 0 || len > SAN_VALUE_MAX + 64)
        return -1;
    r = ASN1_get_object(&p, &l, &tag, &cls, (long)len);
    if ((r & 0x81) != 0 || (r & V_ASN1_CONSTRUCTED) == 0 || tag != V_ASN1_SEQUENCE ||
        cls != V_ASN1_UNIVERSAL || p + l != der + len)
        goto out;
    end = p + l;
    /*
     * hwType: d2i looks at the tag number only, so the identifier octet is
     * checked here; c2i refuses empty and non-minimal arcs, so the text is canonical.
     */
    if (p < end && *p == V_ASN1_OBJECT)
        obj = d2i_ASN1_OBJECT(NULL, &p, end - p);
    n = obj != NULL ? OBJ_obj2txt(type, sizeof(type), obj, 1) : 0;
    if (n <= 0 || n >= (int)sizeof(type) || p >= end)
        goto out;
    r = ASN1_get_object(&p, &l, &tag, &cls, end - p);
    if ((r & 0x81) != 0 || (r & V_ASN1_CONSTRUCTED) != 0 || tag != V_ASN1_OCTET_STRING ||
        cls != V_ASN1_UNIVERSAL || p + l != end)
        goto out;
    if (!is_utf8(p, (size_t)l, SAN_VALUE_MAX) || memchr(p, '/', (size_t)l) != NULL)
        goto out;
    *out = xasprintf("%.*s/%s", (int)l, (const char *)p, type);
    rc = 0;
out:
    ASN1_OBJECT_free(obj);
    ERR_clear_error();
    return rc;
}

/* A DER SEQUENCE as an otherName ANY value (OpenSSL keeps the encoding as is). */
static ASN1_TYPE *seq_type(const unsigned char *der, int len)
{
    ASN1_STRING *seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    ASN1_TYPE *t = ASN1_TYPE_new();

    if (seq == NULL || t == NULL || ASN1_STRING_set(seq, der, len) != 1) {
        ASN1_STRING_free(seq);
        ASN1_TYPE_free(t);
        return NULL;
    }
    ASN1_TYPE_set(t, V_ASN1_SEQUENCE, seq);
    return t;
}

/* DER PermanentIdentifier SEQUENCE { identifierValue UTF8String } as an ANY value. */
static ASN1_TYPE *perm_id_type(const char *value, size_t vlen)
{
    int inner = ASN1_object_size(0, (int)vlen, V_ASN1_UTF8STRING);
    int total = ASN1_object_size(1, inner, V_ASN1_SEQUENCE);
    unsigned char *der = xmalloc((size_t)total), *p = der;
    ASN1_TYPE *t;

    ASN1_put_object(&p, 1, inner, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    ASN1_put_object(&p, 0, (int)vlen, V_ASN1_UTF8STRING, V_ASN1_UNIVERSAL);
    memcpy(p, value, vlen);
    t = seq_type(der, total);
    free(der);
    return t;
}

/* DER HardwareModuleName SEQUENCE { hwType OID, hwSerialNum OCTET STRING } as an ANY value. */
static ASN1_TYPE *hw_module_type(const ASN1_OBJECT *hw_type, const char *serial, size_t slen)
{
    int olen = i2d_ASN1_OBJECT(hw_type, NULL), inner, total;
    unsigned char *der, *p;
    ASN1_TYPE *t;

    if (olen <= 0)
        return NULL;
    inner = olen + ASN1_object_size(0, (int)slen, V_ASN1_OCTET_STRING);
    total = ASN1_object_size(1, inner, V_ASN1_SEQUENCE);
    der = xmalloc((size_t)total);
    p = der;
    ASN1_put_object(&p, 1, inner, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    i2d_ASN1_OBJECT(hw_type, &p);
    ASN1_put_object(&p, 0, (int)slen, V_ASN1_OCTET_STRING, V_ASN1_UNIVERSAL);
    memcpy(p, serial, slen);
    t = seq_type(der, total);
    free(der);
    return t;
}

static ASN1_TYPE *utf8_type(const char *value, size_t vlen)
{
    ASN1_UTF8STRING *s = ASN1_UTF8STRING_new();
    ASN1_TYPE *t = ASN1_TYPE_new();

    if (s == NULL || t == NULL || ASN1_STRING_set(s, value, (int)vlen) != 1) {
        ASN1_UTF8STRING_free(s);
        ASN1_TYPE_free(t);
        return NULL;
    }
    ASN1_TYPE_set(t, V_ASN1_UTF8STRING, s);
    return t;
}

/* An otherName of type oid holding t, which it takes (freed on failure too). */
static GENERAL_NAME *othername(const char *oid, ASN1_TYPE *t, char err[ERR_LEN])
{
    ASN1_OBJECT *obj = OBJ_txt2obj(oid, 1);
    GENERAL_NAME *gn = GENERAL_NAME_new();

    if (obj == NULL || t == NULL || gn == NULL || GENERAL_NAME_set0_othername(gn, obj, t) != 1) {
        pki_ossl_err(err, "GENERAL_NAME_set0_othername");
        ASN1_OBJECT_free(obj);
        ASN1_TYPE_free(t);
        GENERAL_NAME_free(gn);
        return NULL;
    }
    return gn;
}

/* permanentIdentifier (identifierValue only) or UPN (a bare UTF8String). */
static GENERAL_NAME *utf8_othername(const char *oid, const char *value, char err[ERR_LEN])
{
    size_t vlen = strnlen(value, SAN_VALUE_MAX + 1);
    bool perm = strcmp(oid, PKI_OID_PERMANENT_ID) == 0;

    if (!is_utf8((const unsigned char *)value, vlen, SAN_VALUE_MAX)) {
        pki_set_err(err, "%s SAN value is not 1 to %d bytes of UTF-8",
                    perm ? "permanentIdentifier" : "UPN", SAN_VALUE_MAX);
        return NULL;
    }
    return othername(oid, perm ? perm_id_type(value, vlen) : utf8_type(value, vlen), err);
}

/*
 * "serial/type-OID", the hardware-module identifier form, as a HardwareModuleName:
 * hwSerialNum gets the serial's bytes untouched (DA-5), hwType the OID.
 */
static GENERAL_NAME *hw_module_name(const char *value, char err[ERR_LEN])
{
    const char *slash = strchr(value, '/');
    size_t slen = slash != NULL ? (size_t)(slash - value) : 0;
    char type[HW_TYPE_MAX + 1] = "";
    ASN1_OBJECT *obj = NULL;
    GENERAL_NAME *gn;

    if (slash != NULL && strnlen(slash + 1, HW_TYPE_MAX + 1) <= HW_TYPE_MAX)
        obj = OBJ_txt2obj(slash + 1, 1);
    if (obj != NULL)
        OBJ_obj2txt(type, sizeof(type), obj, 1);
    /* The round trip refuses what OpenSSL would quietly rewrite ("1.2.03", names). */
    if (obj == NULL || strcmp(type, slash + 1) != 0 ||
        !is_utf8((const unsigned char *)value, slen, SAN_VALUE_MAX)) {
        ERR_clear_error();
        ASN1_OBJECT_free(obj);
        pki_set_err(err,
                    "HardwareModuleName SAN value is not \"serial/dotted-OID\" with a "
                    "serial of 1 to %d bytes of UTF-8",
                    SAN_VALUE_MAX);
        return NULL;
    }
    gn = othername(PKI_OID_HW_MODULE_NAME, hw_module_type(obj, value, slen), err);
    ASN1_OBJECT_free(obj);
    return gn;
}

static GENERAL_NAME *ip_name(const char *value, char err[ERR_LEN])
{
    unsigned char addr[16];
    int len = 0;
    ASN1_OCTET_STRING *os = NULL;
    GENERAL_NAME *gn = NULL;

    if (inet_pton(AF_INET, value, addr) == 1)
        len = 4;
    else if (inet_pton(AF_INET6, value, addr) == 1)
        len = 16;
    if (len == 0) {
        pki_set_err(err, "IP SAN is not an IPv4 or IPv6 address");
        return NULL;
    }
    os = ASN1_OCTET_STRING_new();
    gn = GENERAL_NAME_new();
    if (os == NULL || gn == NULL || ASN1_OCTET_STRING_set(os, addr, len) != 1) {
        pki_ossl_err(err, "ASN1_OCTET_STRING_set");
        ASN1_OCTET_STRING_free(os);
        GENERAL_NAME_free(gn);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, GEN_IPADD, os);
    return gn;
}

static GENERAL_NAME *ia5_name(int type, const char *value, size_t max, char err[ERR_LEN])
{
    ASN1_IA5STRING *s = NULL;
    GENERAL_NAME *gn = NULL;

    if (!is_ascii_token(value, max)) {
        pki_set_err(err, "SAN value is not 1 to %zu printable ASCII characters", max);
        return NULL;
    }
    s = ASN1_IA5STRING_new();
    gn = GENERAL_NAME_new();
    if (s == NULL || gn == NULL || ASN1_STRING_set(s, value, (int)strlen(value)) != 1) {
        pki_ossl_err(err, "ASN1_STRING_set");
        ASN1_IA5STRING_free(s);
        GENERAL_NAME_free(gn);
        return NULL;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    return gn;
}

GENERAL_NAME *pki_san_to_general_name(enum pki_san_type type, const char *value, char err[ERR_LEN])
{
    if (value == NULL) {
        pki_set_err(err, "SAN value is missing");
        return NULL;
    }
    switch (type) {
    case PKI_SAN_DNS:
        return ia5_name(GEN_DNS, value, DNS_NAME_MAX, err);
    case PKI_SAN_IP:
        return ip_name(value, err);
    case PKI_SAN_EMAIL:
        return ia5_name(GEN_EMAIL, value, SAN_VALUE_MAX, err);
    case PKI_SAN_URI:
        return ia5_name(GEN_URI, value, SAN_VALUE_MAX, err);
    case PKI_SAN_PERMANENT_ID:
        return utf8_othername(PKI_OID_PERMANENT_ID, value, err);
    case PKI_SAN_UPN:
        return utf8_othername(PKI_OID_UPN, value, err);
    case PKI_SAN_HW_MODULE:
        return hw_module_name(value, err);
    default:
        pki_set_err(err, "unsupported SAN type %d", (int)type);
        return NULL;
    }
}
