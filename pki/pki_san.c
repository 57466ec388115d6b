/*
 * pki_san.c: subjectAltName building blocks shared by CSR parsing and
 * issuance: GeneralName construction from template values (DNS, IP, email,
 * URI, permanentIdentifier, UPN, HardwareModuleName) and the RFC 4043
 * PermanentIdentifier and RFC 4108 HardwareModuleName codecs, which map both
 * to and from the device identifier text "part/OID" of an order.
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
/* Dotted OID text (hwType, assigner); device identifiers are at most 128 bytes (DA-1, DA-3). */
#define OID_TEXT_MAX 128

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

/* Opens a DER SEQUENCE spanning der..der+len: *p and *end bound its contents. 0/-1. */
static int seq_open(const unsigned char *der, size_t len, const unsigned char **p,
                    const unsigned char **end)
{
    long l = 0;
    int tag = 0, cls = 0, r;

    *p = der;
    if (der == NULL || len == 0 || len > SAN_VALUE_MAX + 64)
        return -1;
    r = ASN1_get_object(p, &l, &tag, &cls, (long)len);
    /* 0x80: error; 0x01: indefinite length, never valid DER. */
    if ((r & 0x81) != 0 || (r & V_ASN1_CONSTRUCTED) == 0 || tag != V_ASN1_SEQUENCE ||
        cls != V_ASN1_UNIVERSAL || *p + l != der + len) {
        ERR_clear_error();
        return -1;
    }
    *end = *p + l;
    return 0;
}

/* A universal primitive element of tag at *p (< end): its contents, *p moved past it. 0/-1. */
static int prim_read(const unsigned char **p, const unsigned char *end, int tag,
                     const unsigned char **val, size_t *vlen)
{
    long l = 0;
    int t = 0, cls = 0, r;

    if (*p >= end)
        return -1;
    r = ASN1_get_object(p, &l, &t, &cls, end - *p);
    if ((r & 0x81) != 0 || (r & V_ASN1_CONSTRUCTED) != 0 || t != tag || cls != V_ASN1_UNIVERSAL) {
        ERR_clear_error();
        return -1;
    }
    *val = *p;
    *vlen = (size_t)l;
    *p += l;
    return 0;
}

/*
 * An OBJECT IDENTIFIER at *p (< end) as dotted text, *p moved past it. d2i
 * looks at the tag number only, so the identifier octet is checked here; c2i
 * refuses empty and non-minimal arcs, so the text is canonical. 0/-1.
 */
static int oid_read(const unsigned char **p, const unsigned char *end, char txt[OID_TEXT_MAX + 1])
{
    ASN1_OBJECT *obj = NULL;
    int n = 0;

    if (*p < end && **p == V_ASN1_OBJECT)
        obj = d2i_ASN1_OBJECT(NULL, p, end - *p);
    if (obj != NULL)
        n = OBJ_obj2txt(txt, OID_TEXT_MAX + 1, obj, 1);
    ASN1_OBJECT_free(obj);
    ERR_clear_error();
    return n > 0 && n <= OID_TEXT_MAX ? 0 : -1;
}

/*
 * "part" or "part/OID", the identifier text an order holds for the device;
 * NULL unless part is 1..1024 bytes of UTF-8 without NUL or "/" (a "/" would
 * make it read back as another identifier, "A/1.2" as "A" plus an OID).
 */
static char *id_text(const unsigned char *part, size_t plen, const char *oid)
{
    if (!is_utf8(part, plen, SAN_VALUE_MAX) || memchr(part, '/', plen) != NULL)
        return NULL;
    if (oid == NULL)
        return xstrndup((const char *)part, plen);
    return xasprintf("%.*s/%s", (int)plen, (const char *)part, oid);
}

int pki_perm_id_parse(const unsigned char *der, size_t len, char **out)
{
    const unsigned char *p, *end, *val = NULL;
    char assigner[OID_TEXT_MAX + 1];
    size_t vlen = 0;
    bool has_assigner = false;

    *out = NULL;
    if (seq_open(der, len, &p, &end) != 0)
        return -1;
    /* Both elements are optional, in this order: identifierValue, assigner. */
    if (p < end && *p == V_ASN1_UTF8STRING &&
        prim_read(&p, end, V_ASN1_UTF8STRING, &val, &vlen) != 0)
        return -1;
    if (p < end) {
        if (oid_read(&p, end, assigner) != 0)
            return -1;
        has_assigner = true;
    }
    if (p != end)
        return -1;
    if (val == NULL)
        return 0;
    *out = id_text(val, vlen, has_assigner ? assigner : NULL);
    return *out != NULL ? 0 : -1;
}

int pki_hw_module_parse(const unsigned char *der, size_t len, char **out)
{
    const unsigned char *p, *end, *serial = NULL;
    char type[OID_TEXT_MAX + 1];
    size_t slen = 0;

    *out = NULL;
    if (seq_open(der, len, &p, &end) != 0 || oid_read(&p, end, type) != 0 ||
        prim_read(&p, end, V_ASN1_OCTET_STRING, &serial, &slen) != 0 || p != end)
        return -1;
    *out = id_text(serial, slen, type);
    return *out != NULL ? 0 : -1;
}

/*
 * DER SEQUENCE { [oid,] str_tag part [, oid] } as an otherName ANY value (OpenSSL
 * keeps the encoding as is): PermanentIdentifier puts its optional assigner
 * last, HardwareModuleName its hwType first.
 */
static ASN1_TYPE *id_seq_type(int str_tag, const char *part, size_t plen, const ASN1_OBJECT *oid,
                              bool oid_first)
{
    int olen = oid != NULL ? i2d_ASN1_OBJECT(oid, NULL) : 0;
    int inner, total;
    unsigned char *der, *p;
    ASN1_STRING *seq = NULL;
    ASN1_TYPE *t = NULL;

    if (oid != NULL && olen <= 0)
        return NULL;
    inner = olen + ASN1_object_size(0, (int)plen, str_tag);
    total = ASN1_object_size(1, inner, V_ASN1_SEQUENCE);
    der = xmalloc((size_t)total);
    p = der;
    ASN1_put_object(&p, 1, inner, V_ASN1_SEQUENCE, V_ASN1_UNIVERSAL);
    if (oid != NULL && oid_first)
        i2d_ASN1_OBJECT(oid, &p);
    ASN1_put_object(&p, 0, (int)plen, str_tag, V_ASN1_UNIVERSAL);
    memcpy(p, part, plen);
    p += plen;
    if (oid != NULL && !oid_first)
        i2d_ASN1_OBJECT(oid, &p);
    seq = ASN1_STRING_type_new(V_ASN1_SEQUENCE);
    t = ASN1_TYPE_new();
    if (seq == NULL || t == NULL || ASN1_STRING_set(seq, der, total) != 1) {
        ASN1_STRING_free(seq);
        ASN1_TYPE_free(t);
        t = NULL;
    } else {
        ASN1_TYPE_set(t, V_ASN1_SEQUENCE, seq);
    }
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

static GENERAL_NAME *upn_name(const char *value, char err[ERR_LEN])
{
    size_t vlen = strnlen(value, SAN_VALUE_MAX + 1);

    if (!is_utf8((const unsigned char *)value, vlen, SAN_VALUE_MAX)) {
        pki_set_err(err, "UPN SAN value is not 1 to %d bytes of UTF-8", SAN_VALUE_MAX);
        return NULL;
    }
    return othername(PKI_OID_UPN, utf8_type(value, vlen), err);
}

/*
 * Splits "part[/OID]", the device identifier form: *plen is the length of
 * part, *oid the OID after the first "/" (NULL without one). The text round
 * trip refuses what OpenSSL would quietly rewrite ("1.2.03", names, a second
 * "/"), so the OID reads back as written. 0/-1.
 */
static int id_split(const char *value, size_t *plen, ASN1_OBJECT **oid)
{
    size_t n = strnlen(value, SAN_VALUE_MAX + OID_TEXT_MAX + 2);
    const char *slash = memchr(value, '/', n);
    char back[OID_TEXT_MAX + 1];

    *oid = NULL;
    *plen = slash != NULL ? (size_t)(slash - value) : n;
    if (!is_utf8((const unsigned char *)value, *plen, SAN_VALUE_MAX))
        return -1;
    if (slash == NULL)
        return 0;
    if (n - *plen - 1 <= OID_TEXT_MAX && value[n] == '\0')
        *oid = OBJ_txt2obj(slash + 1, 1);
    if (*oid != NULL && OBJ_obj2txt(back, sizeof(back), *oid, 1) > 0 &&
        strcmp(back, slash + 1) == 0)
        return 0;
    ASN1_OBJECT_free(*oid);
    *oid = NULL;
    ERR_clear_error();
    return -1;
}

/*
 * A device identifier as its SAN, part bytes untouched (DA-4, DA-5):
 * "value[/assigner-OID]" as PermanentIdentifier { identifierValue, assigner },
 * "serial/type-OID" as HardwareModuleName { hwType, hwSerialNum }.
 */
static GENERAL_NAME *device_name(enum pki_san_type type, const char *value, char err[ERR_LEN])
{
    bool hw = type == PKI_SAN_HW_MODULE;
    ASN1_OBJECT *oid = NULL;
    GENERAL_NAME *gn;
    size_t plen = 0;

    /* hwType is mandatory; the assigner is optional. */
    if (id_split(value, &plen, &oid) != 0 || (hw && oid == NULL)) {
        ASN1_OBJECT_free(oid);
        if (hw)
            pki_set_err(err,
                        "HardwareModuleName SAN value is not \"serial/dotted-OID\" with a "
                        "serial of 1 to %d bytes of UTF-8",
                        SAN_VALUE_MAX);
        else
            pki_set_err(err,
                        "permanentIdentifier SAN value is not \"value[/dotted-OID]\" with "
                        "a value of 1 to %d bytes of UTF-8",
                        SAN_VALUE_MAX);
        return NULL;
    }
    if (hw)
        gn = othername(PKI_OID_HW_MODULE_NAME,
                       id_seq_type(V_ASN1_OCTET_STRING, value, plen, oid, true), err);
    else
        gn = othername(PKI_OID_PERMANENT_ID,
                       id_seq_type(V_ASN1_UTF8STRING, value, plen, oid, false), err);
    ASN1_OBJECT_free(oid);
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
    case PKI_SAN_HW_MODULE:
        return device_name(type, value, err);
    case PKI_SAN_UPN:
        return upn_name(value, err);
    default:
        pki_set_err(err, "unsupported SAN type %d", (int)type);
        return NULL;
    }
}
