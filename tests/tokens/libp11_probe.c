/* libp11_probe: Debian's libp11 as a second, independent client of a token hsmsignd uses.
 *
 *   libp11_probe --module PATH --token LABEL --pin-file FILE [--init-args STRING] [--prefix hsmsignd/]
 *                [--min-keys N] [--also-accept CKR_NAME|0xHEX]... [--fallback-enumeration]
 *
 * Logs in with libp11, enumerates the private and public keys (PKCS11_enumerate_keys /
 * PKCS11_enumerate_public_keys) and prints each one's label and CKA_ID. Then, for every private key whose
 * label starts with the prefix (the daemon's keys), it tries to get the private value out, two ways:
 *   1. through libp11: PKCS11_get_private_key() and the EVP_PKEY's private parameters ("d", "priv");
 *   2. through the module's own function list (the same loaded module, C_GetFunctionList): C_GetAttributeValue
 *      of CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2, CKA_COEFFICIENT (RSA)
 *      or CKA_VALUE (EC, EdDSA), each alone, and CKA_EXTRACTABLE / CKA_SENSITIVE read.
 * Every attempt must be refused: the attribute reads with CKR_ATTRIBUTE_SENSITIVE (or a return value given
 * with --also-accept, which the test passes only with its reason printed), the EVP_PKEY without any
 * private parameter. Exits 0 only when at least --min-keys (default 1) of the daemon's private keys were found
 * and none gave anything away; 1 when something was extracted or too few keys were found; 2 on a usage or
 * setup error. Every line it prints is one finding, for the test's log.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/pkcs11.h>
#include <libp11.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

static void hex(const unsigned char *p, size_t n, char *out) {
    for (size_t i = 0; i < n; ++i) sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = 0;
}

static const char *rv_name(CK_RV rv) {
    switch (rv) {
    case CKR_OK: return "CKR_OK";
    case CKR_ATTRIBUTE_SENSITIVE: return "CKR_ATTRIBUTE_SENSITIVE";
    case CKR_ATTRIBUTE_TYPE_INVALID: return "CKR_ATTRIBUTE_TYPE_INVALID";
    case CKR_OBJECT_HANDLE_INVALID: return "CKR_OBJECT_HANDLE_INVALID";
    case CKR_ARGUMENTS_BAD: return "CKR_ARGUMENTS_BAD";
    case CKR_GENERAL_ERROR: return "CKR_GENERAL_ERROR";
    case CKR_FUNCTION_FAILED: return "CKR_FUNCTION_FAILED";
    case CKR_USER_NOT_LOGGED_IN: return "CKR_USER_NOT_LOGGED_IN";
    default: return "CKR_other";
    }
}

static int accepted(CK_RV rv, const CK_RV *list, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (list[i] == rv) return 1;
    return 0;
}

static int read_file_line(const char *path, char *buf, size_t size) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    if (!fgets(buf, (int)size, f)) { fclose(f); return -1; }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = 0;
    return 0;
}

static CK_RV rv_from_text(const char *text) {
    if (!strcmp(text, "CKR_ATTRIBUTE_TYPE_INVALID")) return CKR_ATTRIBUTE_TYPE_INVALID;
    if (!strcmp(text, "CKR_ATTRIBUTE_SENSITIVE")) return CKR_ATTRIBUTE_SENSITIVE;
    return (CK_RV)strtoul(text, NULL, 0);
}

/* 2. C_GetAttributeValue through the module's function list, on the private key object with this CKA_ID. */
static void raw_attempts(CK_FUNCTION_LIST_PTR f, CK_SESSION_HANDLE session, unsigned char *key_id, size_t id_len,
                         const char *id, const CK_RV *also_accept, size_t n_also_accept, int *leaks_out,
                         int *odd_out) {
    int leaks = 0, odd = 0;
    CK_RV rv;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_ID, key_id, id_len}};
    CK_OBJECT_HANDLE objs[4];
    CK_ULONG count = 0;
    if (f->C_FindObjectsInit(session, tmpl, 2) != CKR_OK || f->C_FindObjects(session, objs, 4, &count) != CKR_OK) {
        printf("  ODD: C_FindObjects failed\n");
        *odd_out += 1;
        return;
    }
    f->C_FindObjectsFinal(session);
    if (count == 0) { printf("  ODD: no private key object with id %s through the function list\n", id); ++odd; }
    for (CK_ULONG o = 0; o < count; ++o) {
        CK_KEY_TYPE type = 0;
        CK_BBOOL sensitive = 0, extractable = 1;
        CK_ATTRIBUTE info[] = {{CKA_KEY_TYPE, &type, sizeof type}, {CKA_SENSITIVE, &sensitive, 1},
                               {CKA_EXTRACTABLE, &extractable, 1}};
        rv = f->C_GetAttributeValue(session, objs[o], info, 3);
        printf("  key type 0x%lx, CKA_SENSITIVE %d, CKA_EXTRACTABLE %d (%s)\n", (unsigned long)type, sensitive,
               extractable, rv_name(rv));
        CK_ATTRIBUTE_TYPE rsa[] = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1, CKA_PRIME_2, CKA_EXPONENT_1, CKA_EXPONENT_2,
                                   CKA_COEFFICIENT};
        CK_ATTRIBUTE_TYPE other[] = {CKA_VALUE};
        CK_ATTRIBUTE_TYPE *wanted = type == CKK_RSA ? rsa : other;
        size_t nwanted = type == CKK_RSA ? 6 : 1;
        for (size_t w = 0; w < nwanted; ++w) {
            unsigned char value[4096];
            CK_ATTRIBUTE a = {wanted[w], NULL, 0};
            rv = f->C_GetAttributeValue(session, objs[o], &a, 1); /* the length first */
            if (rv == CKR_OK && a.ulValueLen != CK_UNAVAILABLE_INFORMATION && a.ulValueLen <= sizeof value) {
                a.pValue = value;
                rv = f->C_GetAttributeValue(session, objs[o], &a, 1);
            }
            int got = rv == CKR_OK && a.ulValueLen != CK_UNAVAILABLE_INFORMATION && a.ulValueLen > 0;
            if (got) {
                printf("  LEAK: C_GetAttributeValue(0x%lx) returned %lu bytes\n", (unsigned long)wanted[w],
                       (unsigned long)a.ulValueLen);
                ++leaks;
            } else if (rv == CKR_ATTRIBUTE_SENSITIVE) {
                printf("  C_GetAttributeValue(0x%lx): refused, CKR_ATTRIBUTE_SENSITIVE\n", (unsigned long)wanted[w]);
            } else if (accepted(rv, also_accept, n_also_accept)) {
                printf("  C_GetAttributeValue(0x%lx): refused, %s (0x%lx): accepted for this token (--also-accept)\n",
                       (unsigned long)wanted[w], rv_name(rv), (unsigned long)rv);
            } else {
                /* Refused, but not as the standard says a sensitive attribute is: counted as a failure. */
                printf("  NOT-SENSITIVE-REFUSAL: C_GetAttributeValue(0x%lx): %s (0x%lx), not CKR_ATTRIBUTE_SENSITIVE\n",
                       (unsigned long)wanted[w], rv_name(rv), (unsigned long)rv);
                ++odd;
            }
        }
    }
    *leaks_out += leaks;
    *odd_out += odd;
}

int main(int argc, char **argv) {
    CK_RV also_accept[8];
    size_t n_also_accept = 0;
    const char *module = NULL, *label = NULL, *pin_file = NULL, *init_args = NULL, *prefix = "hsmsignd/";
    int min_keys = 1, fallback = 0;
    for (int i = 1; i < argc; i += 2) {
        if (!strcmp(argv[i], "--fallback-enumeration")) { fallback = 1; --i; continue; }
        if (i + 1 >= argc) { fprintf(stderr, "%s needs a value\n", argv[i]); return 2; }
        if (!strcmp(argv[i], "--module")) module = argv[i + 1];
        else if (!strcmp(argv[i], "--token")) label = argv[i + 1];
        else if (!strcmp(argv[i], "--pin-file")) pin_file = argv[i + 1];
        else if (!strcmp(argv[i], "--init-args")) init_args = argv[i + 1];
        else if (!strcmp(argv[i], "--prefix")) prefix = argv[i + 1];
        else if (!strcmp(argv[i], "--min-keys")) min_keys = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--also-accept") && n_also_accept < 8) also_accept[n_also_accept++] = rv_from_text(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    if (!module || !label || !pin_file) {
        fprintf(stderr, "usage: %s --module PATH --token LABEL --pin-file FILE [--init-args S] [--prefix P] "
                        "[--min-keys N]\n", argv[0]);
        return 2;
    }
    char pin[256];
    if (read_file_line(pin_file, pin, sizeof pin) != 0) { perror(pin_file); return 2; }

    PKCS11_CTX *ctx = PKCS11_CTX_new();
    if (init_args) PKCS11_CTX_init_args(ctx, init_args);
    if (PKCS11_CTX_load(ctx, module) != 0) { fprintf(stderr, "setup: PKCS11_CTX_load(%s) failed\n", module); return 2; }
    PKCS11_SLOT *slots = NULL, *slot = NULL;
    unsigned int nslots = 0;
    if (PKCS11_enumerate_slots(ctx, &slots, &nslots) != 0) { fprintf(stderr, "setup: no slots\n"); return 2; }
    for (unsigned int i = 0; i < nslots; ++i)
        if (slots[i].token && slots[i].token->initialized && !strcmp(slots[i].token->label, label)) slot = &slots[i];
    if (!slot) { fprintf(stderr, "setup: no token labelled %s among %u slots\n", label, nslots); return 2; }
    printf("token: %s (%s %s)\n", slot->token->label, slot->token->manufacturer, slot->token->model);
    if (PKCS11_open_session(slot, 0) != 0 || PKCS11_login(slot, 0, pin) != 0) {
        fprintf(stderr, "setup: login to %s failed\n", label);
        return 2;
    }

    /* The module libp11 loaded (dlopen gives back the same handle): its function list, for raw reads. */
    void *handle = dlopen(module, RTLD_NOW | RTLD_NOLOAD);
    void *symbol = handle ? dlsym(handle, "C_GetFunctionList") : NULL;
    CK_C_GetFunctionList get_list = NULL;
    if (symbol) memcpy(&get_list, &symbol, sizeof get_list); /* ISO C has no object-to-function pointer cast */
    CK_FUNCTION_LIST_PTR f = NULL;
    if (!get_list || get_list(&f) != CKR_OK) { fprintf(stderr, "setup: C_GetFunctionList of %s\n", module); return 2; }
    /* Usually CKR_CRYPTOKI_ALREADY_INITIALIZED (libp11 did it); p11-kit-client.so hands out a list of its own. */
    CK_C_INITIALIZE_ARGS args;
    memset(&args, 0, sizeof args);
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = (void *)init_args;
    CK_RV rv = f->C_Initialize(&args);
    if (rv != CKR_OK && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        fprintf(stderr, "setup: C_Initialize of the function list: 0x%lx\n", (unsigned long)rv);
        return 2;
    }
    CK_SESSION_HANDLE session;
    rv = f->C_OpenSession(PKCS11_get_slotid_from_slot(slot), CKF_SERIAL_SESSION, NULL, NULL, &session);
    if (rv != CKR_OK) { fprintf(stderr, "setup: C_OpenSession 0x%lx\n", (unsigned long)rv); return 2; }
    rv = f->C_Login(session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        fprintf(stderr, "setup: C_Login 0x%lx\n", (unsigned long)rv);
        return 2;
    }

    PKCS11_KEY *pubs = NULL;
    unsigned int npubs = 0;
    if (PKCS11_enumerate_public_keys(slot->token, &pubs, &npubs) == 0)
        for (unsigned int i = 0; i < npubs; ++i) {
            char id[2 * 256 + 1];
            hex(pubs[i].id, pubs[i].id_len > 256 ? 256 : pubs[i].id_len, id);
            printf("public key: label %s id %s\n", pubs[i].label ? pubs[i].label : "", id);
        }

    PKCS11_KEY *keys = NULL;
    unsigned int nkeys = 0;
    int found = 0, leaks = 0, odd = 0;
    unsigned int total = 0;
    if (PKCS11_enumerate_keys(slot->token, &keys, &nkeys) != 0) {
        /* libp11 0.4.12 gives up on the whole token when one key is of a type it does not know (Ed25519,
         * CKK_EC_EDWARDS). With --fallback-enumeration the probe lists the private keys through the function
         * list instead and makes the raw attempts on them (no libp11 EVP_PKEY attempt then); without it, fails. */
        if (!fallback) {
            printf("FAIL: PKCS11_enumerate_keys failed (libp11 does not know one of the token's key types?); "
                   "--fallback-enumeration lists the keys through the function list\n");
            return 1;
        }
        printf("note: PKCS11_enumerate_keys failed (libp11 0.4.12 knows no Ed25519 key); listing the private keys "
               "through the module's function list instead\n");
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof cls}};
        CK_OBJECT_HANDLE objs[256];
        CK_ULONG count = 0;
        if (f->C_FindObjectsInit(session, tmpl, 1) != CKR_OK || f->C_FindObjects(session, objs, 256, &count) != CKR_OK) {
            fprintf(stderr, "setup: C_FindObjects\n");
            return 2;
        }
        f->C_FindObjectsFinal(session);
        for (CK_ULONG o = 0; o < count; ++o) {
            char objlabel[257] = {0};
            unsigned char objid[256];
            CK_ATTRIBUTE attrs[] = {{CKA_LABEL, objlabel, sizeof objlabel - 1}, {CKA_ID, objid, sizeof objid}};
            if (f->C_GetAttributeValue(session, objs[o], attrs, 2) != CKR_OK) continue;
            objlabel[attrs[0].ulValueLen < 256 ? attrs[0].ulValueLen : 256] = 0;
            char id[2 * 256 + 1];
            hex(objid, attrs[1].ulValueLen, id);
            int ours = !strncmp(objlabel, prefix, strlen(prefix));
            printf("private key (function list): label %s id %s%s\n", objlabel, id, ours ? "" : " (not the daemon's)");
            if (!ours) continue;
            ++found;
            raw_attempts(f, session, objid, attrs[1].ulValueLen, id, also_accept, n_also_accept, &leaks, &odd);
        }
        total = (unsigned int)count;
    }
    for (unsigned int i = 0; i < nkeys; ++i) {
        PKCS11_KEY *key = &keys[i];
        char id[2 * 256 + 1];
        size_t id_len = key->id_len > 256 ? 256 : key->id_len;
        hex(key->id, id_len, id);
        int ours = key->label && !strncmp(key->label, prefix, strlen(prefix));
        printf("private key: label %s id %s%s\n", key->label ? key->label : "", id, ours ? "" : " (not the daemon's)");
        if (!ours) continue;
        ++found;

        /* 1. libp11's EVP_PKEY: it must carry no private parameter. */
        EVP_PKEY *pkey = PKCS11_get_private_key(key);
        if (!pkey) {
            printf("  libp11 PKCS11_get_private_key: no EVP_PKEY (key type unsupported by libp11): nothing exported\n");
        } else {
            const char *params[] = {OSSL_PKEY_PARAM_RSA_D, OSSL_PKEY_PARAM_RSA_FACTOR1, OSSL_PKEY_PARAM_PRIV_KEY};
            for (size_t p = 0; p < sizeof params / sizeof *params; ++p) {
                BIGNUM *bn = NULL;
                if (EVP_PKEY_get_bn_param(pkey, params[p], &bn) && bn && !BN_is_zero(bn)) {
                    printf("  LEAK: libp11 EVP_PKEY gives private parameter %s\n", params[p]);
                    ++leaks;
                }
                BN_free(bn);
            }
            printf("  libp11 EVP_PKEY (%s): no private parameter\n", EVP_PKEY_get0_type_name(pkey));
            EVP_PKEY_free(pkey);
        }

        raw_attempts(f, session, key->id, id_len, id, also_accept, n_also_accept, &leaks, &odd);
    }
    printf("summary: %d of the daemon's private keys found (of %u private keys), %d extracted, %d odd refusals\n",
           found, nkeys + total, leaks, odd);
    f->C_CloseSession(session);
    PKCS11_release_all_slots(ctx, slots, nslots);
    PKCS11_CTX_unload(ctx);
    PKCS11_CTX_free(ctx);
    return (found >= min_keys && leaks == 0 && odd == 0) ? 0 : 1;
}
