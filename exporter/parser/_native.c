/* Single-pass native parser: a batch of log lines -> the columns of ev1 and of each ev_<family>.
 *
 * It computes exactly what the SQL in header.py and body.py computes (that SQL is the
 * reference: tests compare both), but in one pass over the bytes with no per-line Python.
 * Positions are byte offsets; the SQL's character positions give the same cuts because every
 * cut is relative to ASCII separators found in the same string.
 *
 * Attacker-controlled parts (subjects, replies, HELO names) are cut out by position from the
 * end of the line's fixed structure, as in body.py: searches are first-match or last-match
 * exactly where the SQL uses instr / pi_rfind.
 *
 * Output: for each table a row count and a list of columns (name, type, validity, buffers);
 * exporter/parser/native.py turns them into Arrow arrays without copying.
 */
#define PY_SSIZE_T_CLEAN
#define _GNU_SOURCE
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <malloc.h>

/* ---- slices ------------------------------------------------------------------------- */

typedef struct { const char *p; Py_ssize_t n; } S;  /* n < 0: SQL NULL */
static const S NUL = {NULL, -1};
static inline S mk(const char *p, Py_ssize_t n) { S s = {p, n}; return s; }
static inline S from(S s, Py_ssize_t i) { if (s.n < 0) return s; return i >= s.n ? mk(s.p + s.n, 0) : mk(s.p + i, s.n - i); }
static inline S head(S s, Py_ssize_t n) { return mk(s.p, n < s.n ? (n < 0 ? 0 : n) : s.n); }
#define LIT(x) x, (Py_ssize_t)(sizeof(x) - 1)

/* a and b agree on n bytes: a loop the compiler unrolls for a literal's length, where a
   memcmp call costs more than the few bytes it compares (most differ at the first) */
static inline int same(const char *a, const char *b, Py_ssize_t n) {
    for (Py_ssize_t i = 0; i < n; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}
/* memchr for the needle's first byte, then compare the rest: glibc's memmem sets up a
   table on each call, which costs more than the search in a log line's few dozen bytes */
static inline Py_ssize_t find(S s, const char *nd, Py_ssize_t nl) {
    if (s.n < nl) return -1;
    if (nl == 0) return 0;
    const char *p = s.p, *last = s.p + s.n - nl;  /* the last place the needle can start */
    while (p <= last) {
        p = memchr(p, nd[0], (size_t)(last - p + 1));
        if (!p) return -1;
        if (same(p + 1, nd + 1, nl - 1)) return p - s.p;
        p++;
    }
    return -1;
}
static inline Py_ssize_t rfind(S s, const char *nd, Py_ssize_t nl) {
    for (Py_ssize_t i = s.n - nl; i >= 0; i--)
        if (s.p[i] == nd[0] && same(s.p + i, nd, nl)) return i;
    return -1;
}
static inline Py_ssize_t findc(S s, char c) {
    const char *r = s.n > 0 ? memchr(s.p, c, (size_t)s.n) : NULL;
    return r ? r - s.p : -1;
}
static inline int starts(S s, const char *nd, Py_ssize_t nl) { return s.n >= nl && same(s.p, nd, nl); }
static inline int ends(S s, const char *nd, Py_ssize_t nl) { return s.n >= nl && same(s.p + s.n - nl, nd, nl); }
static inline int eq(S s, const char *nd, Py_ssize_t nl) { return s.n == nl && same(s.p, nd, nl); }
static inline int contains(S s, const char *nd, Py_ssize_t nl) { return s.n >= 0 && find(s, nd, nl) >= 0; }

/* split_part(s, sep, k), k >= 1; '' past the last part, NULL for NULL */
static S split(S s, const char *sep, Py_ssize_t sl, int k) {
    if (s.n < 0) return NUL;
    for (int i = 1; i < k; i++) {
        Py_ssize_t at = find(s, sep, sl);
        if (at < 0) return mk(s.p + s.n, 0);
        s = from(s, at + sl);
    }
    Py_ssize_t at = find(s, sep, sl);
    return at < 0 ? s : head(s, at);
}
static S split_last(S s, const char *sep, Py_ssize_t sl) {  /* split_part(s, sep, -1) */
    if (s.n < 0) return NUL;
    Py_ssize_t at = rfind(s, sep, sl);
    return at < 0 ? s : from(s, at + sl);
}
static S ltrim_set(S s, const char *set) {
    if (s.n < 0) return s;
    while (s.n > 0 && strchr(set, s.p[0]) && s.p[0]) { s.p++; s.n--; }
    return s;
}
static S rtrim_c(S s, char c) {
    if (s.n < 0) return s;
    while (s.n > 0 && s.p[s.n - 1] == c) s.n--;
    return s;
}
static inline int isdig(char c) { return c >= '0' && c <= '9'; }

/* body.py macros */
/* kv and addr take a literal key: its length is known when compiled */
#define kv(s, key) kv_n(s, key, (Py_ssize_t)sizeof(key) - 1)
#define addr(s, key) addr_n(s, key, (Py_ssize_t)sizeof(key) - 1)
static S kv_n(S s, const char *key, Py_ssize_t kl) {  /* pi_kvx: value after the first ', key=' up to ', ' */
    char nd[40];
    nd[0] = ','; nd[1] = ' '; memcpy(nd + 2, key, (size_t)kl); nd[kl + 2] = '=';
    if (s.n < 0) return NUL;
    Py_ssize_t at = find(s, nd, kl + 3);
    if (at < 0) return NUL;
    return split(from(s, at + kl + 3), LIT(", "), 1);
}
static S addr_n(S s, const char *key, Py_ssize_t kl) {  /* pi_addr: after the first 'key=<' up to '>' */
    char nd[40];
    memcpy(nd, key, (size_t)kl); nd[kl] = '='; nd[kl + 1] = '<';
    if (s.n < 0) return NUL;
    Py_ssize_t at = find(s, nd, kl + 2);
    if (at < 0) return NUL;
    return split(from(s, at + kl + 2), LIT(">"), 1);
}
static S host_of(S c) {  /* pi_host */
    if (c.n < 0) return NUL;
    S h = split(c, LIT("["), 1);
    return h.n == 0 ? NUL : h;
}
static S ip_of(S c) {  /* pi_ip */
    if (c.n < 0 || findc(c, '[') < 0) return NUL;
    return split(split(c, LIT("["), 2), LIT("]"), 1);
}
static S code_of(S r) {  /* pi_code: ^[245][0-9][0-9]([ -]|$) */
    if (r.n < 3 || !(r.p[0] >= '2' && r.p[0] <= '5' && r.p[0] != '3') || !isdig(r.p[1]) || !isdig(r.p[2])) return NUL;
    if (r.n > 3 && r.p[3] != ' ' && r.p[3] != '-') return NUL;
    return head(r, 3);
}
/* [245]\.[0-9]{1,3}\.[0-9]{1,3} at s; returns its length or 0 */
static Py_ssize_t dsn_at(S s, Py_ssize_t i) {
    if (i >= s.n || !(s.p[i] == '2' || s.p[i] == '4' || s.p[i] == '5')) return 0;
    Py_ssize_t j = i + 1;
    for (int part = 0; part < 2; part++) {
        if (j >= s.n || s.p[j] != '.') return 0;
        j++;
        int d = 0;
        while (j < s.n && isdig(s.p[j]) && d < 3) { j++; d++; }
        if (!d) return 0;
    }
    return j - i;
}
static S dsn_of(S r) {  /* pi_dsn */
    if (r.n < 0) return NUL;
    if (r.n >= 4 && (r.p[0] == '2' || r.p[0] == '4' || r.p[0] == '5') && isdig(r.p[1]) && isdig(r.p[2])
        && (r.p[3] == ' ' || r.p[3] == '-')) {
        Py_ssize_t i = 4 + (r.n > 4 && r.p[4] == '#');
        if (dsn_at(r, i)) return ltrim_set(split(from(r, 4), LIT(" "), 1), "#");
    }
    /* ^[245]\.[0-9]{1,3}\.[0-9]{1,3}( |$): the digit runs are greedy but bounded, so try each
       length of the last run */
    if (r.n >= 5 && (r.p[0] == '2' || r.p[0] == '4' || r.p[0] == '5') && r.p[1] == '.') {
        Py_ssize_t j = 2; int d = 0;
        while (j < r.n && isdig(r.p[j]) && d < 3) { j++; d++; }
        if (d && j < r.n && r.p[j] == '.') {
            Py_ssize_t k = j + 1; int e = 0;
            while (k < r.n && isdig(r.p[k]) && e < 3) { k++; e++; }
            if (e && (k == r.n || r.p[k] == ' ')) return split(r, LIT(" "), 1);
        }
    }
    return NUL;
}
static Py_ssize_t rfind1(S s, const char *nd, Py_ssize_t nl) { /* pi_rfind: 1-based, 0 if none */
    if (s.n < 0) return 0;
    Py_ssize_t at = rfind(s, nd, nl);
    return at < 0 ? 0 : at + 1;
}

/* TRY_CAST for the plain shapes Postfix writes: [spaces][sign]digits[spaces] */
static int to_i64(S s, int64_t *out, int64_t lo, int64_t hi) {
    if (s.n <= 0) return 0;
    Py_ssize_t i = 0, n = s.n;
    while (i < n && s.p[i] == ' ') i++;
    while (n > i && s.p[n - 1] == ' ') n--;
    int neg = 0;
    if (i < n && (s.p[i] == '+' || s.p[i] == '-')) { neg = s.p[i] == '-'; i++; }
    if (i >= n) return 0;
    int64_t v = 0;
    for (; i < n; i++) {
        if (!isdig(s.p[i])) return 0;
        if (v > (INT64_MAX - 9) / 10) return 0;
        v = v * 10 + (s.p[i] - '0');
    }
    if (neg) v = -v;
    if (v < lo || v > hi) return 0;
    *out = v;
    return 1;
}
static int to_f64(S s, double *out) {
    if (s.n <= 0 || s.n > 60) return 0;
    char buf[64];
    Py_ssize_t i = 0, n = s.n;
    while (i < n && s.p[i] == ' ') i++;
    while (n > i && s.p[n - 1] == ' ') n--;
    if (i >= n) return 0;
    /* digits[.digits] with at most 15 of them (Postfix's delays): the integer they make
       over a power of ten is exact, so one division rounds as strtod does */
    static const double POW10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                   1e11, 1e12, 1e13, 1e14, 1e15};
    int64_t m = 0;
    int digits = 0, frac = -1;
    Py_ssize_t k = i;
    for (; k < n && digits <= 15; k++) {
        char c = s.p[k];
        if (isdig(c)) { m = m * 10 + (c - '0'); digits++; if (frac >= 0) frac++; }
        else if (c == '.' && frac < 0) frac = 0;
        else break;
    }
    if (k == n && digits > 0 && digits <= 15) {
        *out = (double)m / POW10[frac < 0 ? 0 : frac];
        return 1;
    }
    /* anything else in the shapes TRY_CAST takes goes to strtod */
    for (k = i; k < n; k++) {
        char c = s.p[k];
        if (!(isdig(c) || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')) return 0;
    }
    memcpy(buf, s.p + i, (size_t)(n - i));
    buf[n - i] = 0;
    char *end;
    double v = strtod(buf, &end);
    if (end != buf + (n - i)) return 0;
    *out = v;
    return 1;
}

/* ---- columns ------------------------------------------------------------------------ */

/* T_DICT: a string column of few distinct values (host, daemon ...), kept as int32 indices
   into a dictionary of its distinct values: an Arrow dictionary array, which the families'
   take and filter, and DuckDB's scans, move as integers instead of strings */
enum { T_STR = 's', T_I64 = 'q', T_I32 = 'i', T_F64 = 'd', T_U8 = 'b', T_DICT = 'D' };

typedef struct {
    char name[32];
    char type;
    Py_ssize_t n, cap, nulls;
    uint8_t *valid;       /* one byte per row; packed into a bitmap on export */
    char *num;            /* numeric values */
    int64_t *off;         /* strings: n + 1 offsets */
    char *data;
    Py_ssize_t dlen, dcap;
    int oom;              /* an allocation failed: the column takes no more rows */
    /* T_DICT: num holds the rows' int32 indices; off, data and dlen the distinct values
       (ndict of them), found through an open-addressing table of their indices (-1: empty) */
    Py_ssize_t ndict, dict_cap, slots;
    int32_t *slot;
    int32_t last;         /* the index of the value put last: runs of one value skip the table */
} Col;

#define MAXCOL 16
typedef struct {
    const char *name;
    int ncol;
    Py_ssize_t rows;
    Col cols[MAXCOL];
} Table;

static int grow(void **p, Py_ssize_t *cap, Py_ssize_t need, size_t el) {
    if (need <= *cap) return 0;
    Py_ssize_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = realloc(*p, (size_t)c * el);
    if (!q) return -1;
    *p = q;
    *cap = c;
    return 0;
}

/* room for `need` rows: the column grows to at least that (doubling from 1024) */
static void col_grow(Col *c, Py_ssize_t need) {
    if (need <= c->cap) return;
    Py_ssize_t cap = c->cap;
    Py_ssize_t nc = cap ? cap : 1024;
    while (nc < need) nc *= 2;
    uint8_t *v = realloc(c->valid, (size_t)nc);
    if (!v) { c->oom = 1; return; }
    c->valid = v;
    if (c->type == T_STR) {
        int64_t *o = realloc(c->off, (size_t)(nc + 1) * sizeof(int64_t));
        if (!o) { c->oom = 1; return; }
        c->off = o;
        if (c->n == 0 && cap == 0) c->off[0] = 0;
    } else {
        size_t el = c->type == T_U8 ? 1 : (c->type == T_I32 || c->type == T_DICT) ? 4 : 8;
        char *q = realloc(c->num, (size_t)nc * el);
        if (!q) { c->oom = 1; return; }
        c->num = q;
    }
    c->cap = nc;
}
static inline void col_reserve(Col *c) {
    if (c->n + 2 > c->cap) col_grow(c, c->n + 2);
}
static inline void put_s(Col *c, S s) {
    col_reserve(c);
    if (c->oom) return;
    if (s.n < 0) {
        c->valid[c->n] = 0; c->nulls++;
    } else {
        if (grow((void **)&c->data, &c->dcap, c->dlen + s.n, 1)) { c->oom = 1; return; }
        if (s.n) memcpy(c->data + c->dlen, s.p, (size_t)s.n);
        c->dlen += s.n;
        c->valid[c->n] = 1;
    }
    c->off[c->n + 1] = c->dlen;
    c->n++;
}
static inline void put_i64(Col *c, int ok, int64_t v) {
    col_reserve(c);
    if (c->oom) return;
    ((int64_t *)c->num)[c->n] = ok ? v : 0;
    c->valid[c->n] = (uint8_t)ok; c->nulls += !ok; c->n++;
}
static inline void put_i32(Col *c, int ok, int64_t v) {
    col_reserve(c);
    if (c->oom) return;
    ((int32_t *)c->num)[c->n] = ok ? (int32_t)v : 0;
    c->valid[c->n] = (uint8_t)ok; c->nulls += !ok; c->n++;
}
static inline void put_f64(Col *c, int ok, double v) {
    col_reserve(c);
    if (c->oom) return;
    ((double *)c->num)[c->n] = ok ? v : 0.0;
    c->valid[c->n] = (uint8_t)ok; c->nulls += !ok; c->n++;
}
static inline void put_u8(Col *c, uint8_t v) {
    col_reserve(c);
    if (c->oom) return;
    ((uint8_t *)c->num)[c->n] = v;
    c->valid[c->n] = 1; c->n++;
}

static inline uint64_t hash_bytes(S s) {  /* FNV-1a: the values are a few bytes long */
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < s.n; i++) h = (h ^ (unsigned char)s.p[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}
static inline int dict_is(const Col *c, int32_t k, S s) {
    return c->off[k + 1] - c->off[k] == s.n && memcmp(c->data + c->off[k], s.p, (size_t)s.n) == 0;
}
/* the index of s in the column's dictionary, added when new; -1 when out of memory */
static int32_t dict_index(Col *c, S s) {
    if (c->ndict && dict_is(c, c->last, s)) return c->last;
    if (2 * (c->ndict + 1) > c->slots) {  /* keep the table at most half full */
        Py_ssize_t ns = c->slots ? 2 * c->slots : 64;
        int32_t *t = malloc((size_t)ns * sizeof(int32_t));
        if (!t) return -1;
        memset(t, 0xff, (size_t)ns * sizeof(int32_t));
        for (Py_ssize_t k = 0; k < c->ndict; k++) {
            S v = mk(c->data + c->off[k], c->off[k + 1] - c->off[k]);
            Py_ssize_t i = (Py_ssize_t)(hash_bytes(v) & (uint64_t)(ns - 1));
            while (t[i] >= 0) i = (i + 1) & (ns - 1);
            t[i] = (int32_t)k;
        }
        free(c->slot);
        c->slot = t;
        c->slots = ns;
    }
    Py_ssize_t i = (Py_ssize_t)(hash_bytes(s) & (uint64_t)(c->slots - 1));
    for (; c->slot[i] >= 0; i = (i + 1) & (c->slots - 1))
        if (dict_is(c, c->slot[i], s)) return c->last = c->slot[i];
    if (c->ndict + 2 > c->dict_cap) {
        Py_ssize_t nc = c->dict_cap ? 2 * c->dict_cap : 64;
        int64_t *o = realloc(c->off, (size_t)(nc + 1) * sizeof(int64_t));
        if (!o) return -1;
        c->off = o;
        c->dict_cap = nc;
        if (c->ndict == 0) c->off[0] = 0;
    }
    if (grow((void **)&c->data, &c->dcap, c->dlen + s.n, 1)) return -1;
    if (s.n) memcpy(c->data + c->dlen, s.p, (size_t)s.n);
    c->dlen += s.n;
    c->off[++c->ndict] = c->dlen;
    c->slot[i] = (int32_t)(c->ndict - 1);
    return c->last = (int32_t)(c->ndict - 1);
}
static inline void put_d(Col *c, S s) {
    col_reserve(c);
    if (c->oom) return;
    int32_t k = 0;
    if (s.n >= 0 && (k = dict_index(c, s)) < 0) { c->oom = 1; return; }
    ((int32_t *)c->num)[c->n] = k;
    c->valid[c->n] = s.n >= 0;
    c->nulls += s.n < 0;
    c->n++;
}

static void table_init(Table *t, const char *name, const char *spec) {
    /* spec: "row:i,rcpt:s,..." */
    memset(t, 0, sizeof *t);
    t->name = name;
    const char *p = spec;
    while (*p) {
        Col *c = &t->cols[t->ncol];
        const char *colon = strchr(p, ':');
        size_t len = (size_t)(colon - p);
        memcpy(c->name, p, len);
        c->name[len] = 0;
        c->type = colon[1];
        t->ncol++;
        p = colon + 2;
        if (*p == ',') p++;
    }
}
static void table_free(Table *t) {
    for (int i = 0; i < t->ncol; i++) {
        Col *c = &t->cols[i];
        free(c->valid); free(c->num); free(c->off); free(c->data); free(c->slot);
    }
    memset(t, 0, sizeof *t);
}

/* ---- kinds -------------------------------------------------------------------------- */

#define KINDS(X) X(unparsed) X(dkim_sign) X(dkim_skip) X(dkim_verify) X(other_program) X(reject) X(unknown) \
    X(delivery) X(removed) X(expired) X(queued) X(client) X(message_id) X(resent_message_id) X(pickup) \
    X(notify) X(header_action) X(hold) X(release) X(requeue) X(smtp_reply) X(warning) X(noise) \
    X(postscreen) X(connect) X(disconnect) X(lost_connection) X(tls) X(connect_failed) X(sasl_failed) \
    X(fcrdns_failed)
#define ENUM(k) K_##k,
#define NAME(k) #k,
enum { KINDS(ENUM) K_COUNT };
static const char *KIND_NAMES[] = { KINDS(NAME) };

static const char *POSTSCREEN_VERDICTS[] = {
    "PASS NEW", "PASS OLD", "CONNECT from", "DISCONNECT", "DNSBL rank", "PREGREET", "HANGUP",
    "DATA without valid RCPT", "BDAT without valid RCPT", "COMMAND TIME LIMIT", "COMMAND LENGTH LIMIT",
    "BARE NEWLINE", "NON-SMTP COMMAND", "COMMAND PIPELINING", "COMMAND COUNT LIMIT", "DENYLISTED",
    "BLACKLISTED", "ALLOWLISTED", "WHITELISTED", "ALLOWLIST VETO", "WHITELIST VETO", "CACHE", NULL};
static const char *QUIET_DAEMONS[] = {
    "anvil", "master", "scache", "postfix-script", "postlogd", "tlsmgr", "verify", "trivial-rewrite",
    "proxymap", "showq", "dnsblog", "tlsproxy", "sendmail", "postdrop", "postqueue", "postmap", "postconf",
    "spawn", "flush", "oqmgr", NULL};
/* delivery daemons plus smtpd, cleanup, bounce, pickup, postscreen, postsuper: unknown_<daemon> */
static const char *NAMED_DAEMONS[] = {
    "smtp", "lmtp", "local", "virtual", "pipe", "error", "discard", "relay", "retry", "qmgr",
    "smtpd", "cleanup", "bounce", "pickup", "postscreen", "postsuper", NULL};

static int in_list(S s, const char **list) {
    if (s.n < 0) return 0;
    for (int i = 0; list[i]; i++)
        if (eq(s, list[i], (Py_ssize_t)strlen(list[i]))) return 1;
    return 0;
}
static int starts_list(S s, const char **list) {
    for (int i = 0; list[i]; i++)
        if (starts(s, list[i], (Py_ssize_t)strlen(list[i]))) return i + 1;
    return 0;
}
static inline int is_lower_or_dash(char c) { return (c >= 'a' && c <= 'z') || c == '-'; }
static inline int is_upper_or_dash(char c) { return (c >= 'A' && c <= 'Z') || c == '-'; }

/* ^[a-z-]+: [A-Z-]+ from [^ ]*\[ */
static int is_reject_shape(S b) {
    Py_ssize_t i = 0;
    while (i < b.n && is_lower_or_dash(b.p[i])) i++;
    if (i == 0 || i + 1 >= b.n || b.p[i] != ':' || b.p[i + 1] != ' ') return 0;
    i += 2;
    Py_ssize_t j = i;
    while (j < b.n && is_upper_or_dash(b.p[j])) j++;
    if (j == i || !starts(from(b, j), LIT(" from "))) return 0;
    for (j += 6; j < b.n && b.p[j] != ' '; j++)
        if (b.p[j] == '[') return 1;
    return 0;
}
/* ^[a-z-]+: (header|body) */
static int is_check_shape(S b) {
    Py_ssize_t i = 0;
    while (i < b.n && is_lower_or_dash(b.p[i])) i++;
    if (i == 0 || i + 1 >= b.n || b.p[i] != ':' || b.p[i + 1] != ' ') return 0;
    S r = from(b, i + 2);
    return starts(r, LIT("header ")) || starts(r, LIT("body "));
}

/* ---- header ------------------------------------------------------------------------- */

static const char MONTHS[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
static int month_of(const char *p) {
    for (int i = 0; i < 12; i++)
        if (p[0] == MONTHS[i][0] && p[1] == MONTHS[i][1] && p[2] == MONTHS[i][2]) return i + 1;
    return 0;
}
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}
static int valid_date(int64_t y, int m, int d) {
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}
static inline int d2(const char *p) { return (p[0] - '0') * 10 + (p[1] - '0'); }
static inline int digits(const char *p, int n) { for (int i = 0; i < n; i++) if (!isdig(p[i])) return 0; return 1; }
/* TIME 'HH:MM:SS' as DuckDB casts it: 24:00:00 is allowed */
static int time_us(const char *p, int64_t *us) {
    int h = d2(p), m = d2(p + 3), s = d2(p + 6);
    if (m > 59 || s > 59 || h > 24 || (h == 24 && (m || s))) return 0;
    *us = ((int64_t)h * 3600 + m * 60 + s) * 1000000;
    return 1;
}

typedef struct {
    Py_ssize_t len;    /* bytes of the header incl. ': ', 0 if it did not match */
    int iso;
    S host, tag, pid;  /* pid: NUL when absent */
    int ts_ok;
    int64_t ts;        /* microseconds since the epoch: UTC for RFC 3339, local for BSD */
} Header;

static void parse_header(S l, int year, Header *h) {
    memset(h, 0, sizeof *h);
    h->pid = NUL;
    Py_ssize_t i;
    const char *p = l.p;
    Py_ssize_t n = l.n;
    if (n >= 4 && p[0] >= 'A' && p[0] <= 'Z' && p[1] >= 'a' && p[1] <= 'z' && p[2] >= 'a' && p[2] <= 'z' && p[3] == ' ') {
        /* Mon [ 0-9]?[0-9] HH:MM:SS */
        if (n > 6 && (p[4] == ' ' || isdig(p[4])) && isdig(p[5]) && p[6] == ' ') i = 7;
        else if (n > 5 && isdig(p[4]) && p[5] == ' ') i = 6;
        else return;
        if (n < i + 9 || !isdig(p[i]) || !isdig(p[i + 1]) || p[i + 2] != ':' || !isdig(p[i + 3]) || !isdig(p[i + 4])
            || p[i + 5] != ':' || !isdig(p[i + 6]) || !isdig(p[i + 7]) || p[i + 8] != ' ') return;
        int mon = month_of(p);
        int day = i == 7 ? (p[4] == ' ' ? p[5] - '0' : d2(p + 4)) : p[4] - '0';
        int64_t tus;
        if (mon && valid_date(year, mon, day) && time_us(p + i, &tus)) {
            h->ts_ok = 1;
            h->ts = days_from_civil(year, (unsigned)mon, (unsigned)day) * 86400000000LL + tus;
        }
        i += 9;
    } else if (n >= 20 && digits(p, 4) && p[4] == '-' && digits(p + 5, 2) && p[7] == '-' && digits(p + 8, 2)
               && p[10] == 'T' && digits(p + 11, 2) && p[13] == ':' && digits(p + 14, 2) && p[16] == ':'
               && digits(p + 17, 2)) {
        i = 19;
        int64_t frac = 0;
        int fd = 0;
        if (i < n && p[i] == '.' && i + 1 < n && isdig(p[i + 1])) {
            i++;
            while (i < n && isdig(p[i])) {
                if (fd < 6) { frac = frac * 10 + (p[i] - '0'); fd++; }
                i++;
            }
            while (fd < 6) { frac *= 10; fd++; }
        }
        int64_t offset_s = 0;
        if (i < n && p[i] == 'Z') i++;
        else if (i < n && (p[i] == '+' || p[i] == '-') && i + 3 <= n && digits(p + i + 1, 2)) {
            Py_ssize_t j = i + 3;
            if (j < n && p[j] == ':') j++;
            if (j + 2 <= n && digits(p + j, 2)) {
                int sign = p[i] == '-' ? -1 : 1;
                offset_s = sign * ((int64_t)d2(p + i + 1) * 3600 + (int64_t)d2(p + j) * 60);
                i = j + 2;
            }
        }
        if (i >= n || p[i] != ' ') return;
        h->iso = 1;
        int y = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + d2(p + 2), mo = d2(p + 5), d = d2(p + 8);
        int hh = d2(p + 11), mi = d2(p + 14), ss = d2(p + 17);
        int tok_ok = 1;
        /* the cast reads the whole token up to the first space: anything the regex allowed */
        if (!valid_date(y, mo, d) || mi > 59 || ss > 59 || hh > 24 || (hh == 24 && (mi || ss || frac))) tok_ok = 0;
        if (tok_ok) {
            h->ts_ok = 1;
            h->ts = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400000000LL
                    + ((int64_t)hh * 3600 + mi * 60 + ss - offset_s) * 1000000 + frac;
        }
        i += 1;
    } else {
        return;
    }
    /* host [^ ]+ ' ' */
    Py_ssize_t hs = i;
    while (i < n && p[i] != ' ') i++;
    if (i == hs || i >= n) goto fail;
    S host = mk(p + hs, i - hs);
    i++;
    /* tag [^ \[\]:]+ */
    Py_ssize_t ts = i;
    while (i < n && p[i] != ' ' && p[i] != '[' && p[i] != ']' && p[i] != ':') i++;
    if (i == ts) goto fail;
    S tag = mk(p + ts, i - ts);
    S pid = NUL;
    if (i < n && p[i] == '[') {
        Py_ssize_t ps = ++i;
        while (i < n && isdig(p[i])) i++;
        if (i == ps || i >= n || p[i] != ']') goto fail;
        pid = mk(p + ps, i - ps);
        i++;
    }
    if (i + 1 >= n || p[i] != ':' || p[i + 1] != ' ') goto fail;
    h->len = i + 2;
    h->host = host;
    h->tag = tag;
    h->pid = pid;
    return;
fail:
    memset(h, 0, sizeof *h);
    h->pid = NUL;
}

/* Queue ID at the start of the message: ^(?:[0-9A-F]{6,20}|LONG{6,}zLONG+|NOQUEUE): */
static inline int is_long(char c) {
    if (c >= '0' && c <= '9') return 1;
    if (c >= 'A' && c <= 'Z') return !(c == 'A' || c == 'E' || c == 'I' || c == 'O' || c == 'U');
    if (c >= 'a' && c <= 'y') return !(c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u');
    return 0;
}
static Py_ssize_t queue_id_len(S m) {  /* length of the ID (without ': '), 0 if none */
    Py_ssize_t i = 0;
    while (i < m.n && ((m.p[i] >= '0' && m.p[i] <= '9') || (m.p[i] >= 'A' && m.p[i] <= 'F'))) i++;
    if (i >= 6 && i <= 20 && i + 1 < m.n && m.p[i] == ':' && m.p[i + 1] == ' ') return i;
    i = 0;
    while (i < m.n && is_long(m.p[i])) i++;
    if (i >= 6 && i < m.n && m.p[i] == 'z') {
        Py_ssize_t j = i + 1;
        while (j < m.n && is_long(m.p[j])) j++;
        if (j > i + 1 && j + 1 < m.n && m.p[j] == ':' && m.p[j + 1] == ' ') return j;
    }
    if (starts(m, LIT("NOQUEUE: "))) return 7;
    return 0;
}

/* ---- the pass ----------------------------------------------------------------------- */

enum { F_EV1, F_DELIVERY, F_QUEUE, F_PICKUP, F_CLIENT, F_MESSAGE_ID, F_NOTIFY, F_REJECT, F_HEADER_ACTION,
       F_TLS, F_CONNECTION, F_CONNECT_FAILED, F_SASL_FAILED, F_POSTSCREEN, F_DKIM, F_INFO, F_NOT_PARSED, F_COUNT };

static void init_tables(Table *t) {
    table_init(&t[F_EV1], "ev1", "ts:q,iso:b,host:D,pid:i,instance:D,daemon:D,service:D,body:s,qid:s,kind:b");
    table_init(&t[F_DELIVERY], "delivery",
               "row:i,rcpt:s,orig_rcpt:s,relay:s,delay:d,dsn:s,status:s,response:s,link_kind:s,child_qid:s,code:s,"
               "delay_before_queue:d,delay_in_queue:d,delay_connect:d,delay_transmit:d");
    table_init(&t[F_QUEUE], "queue", "row:i,sender:s,status:s,size:q,nrcpt:i");
    table_init(&t[F_PICKUP], "pickup", "row:i,sender:s,text:s");
    table_init(&t[F_CLIENT], "client", "row:i,client_host:s,client_ip:s,sasl_method:s,sasl_user:s");
    table_init(&t[F_MESSAGE_ID], "message_id", "row:i,message_id:s");
    table_init(&t[F_NOTIFY], "notify", "row:i,link_kind:s,child_qid:s");
    table_init(&t[F_REJECT], "reject",
               "row:i,action:s,stage:s,client_host:s,client_ip:s,response:s,code:s,dsn:s,sender:s,rcpt:s,helo:s,proto:s");
    table_init(&t[F_HEADER_ACTION], "header_action",
               "row:i,action:s,stage:s,check_text:s,client_host:s,client_ip:s,sender:s,rcpt:s,helo:s,response:s,dsn:s");
    table_init(&t[F_TLS], "tls", "row:i,tls_trust:s,tls_direction:s,peer:s,tls_protocol:s,tls_cipher:s,tls_bits:i");
    table_init(&t[F_CONNECTION], "connection", "row:i,client_host:s,client_ip:s,stage:s,text:s");
    table_init(&t[F_CONNECT_FAILED], "connect_failed", "row:i,peer:s,text:s");
    table_init(&t[F_SASL_FAILED], "sasl_failed", "row:i,client_host:s,client_ip:s,sasl_method:s,text:s");
    table_init(&t[F_POSTSCREEN], "postscreen", "row:i,client_ip:s,verdict:s");
    table_init(&t[F_DKIM], "dkim", "row:i,dkim_domain:s,dkim_selector:s,dkim_result:s,text:s");
    table_init(&t[F_INFO], "info", "row:i,text:s");
    table_init(&t[F_NOT_PARSED], "not_parsed", "row:i,text:s,reason:s");
}

static S LS(const char *z) { return mk(z, (Py_ssize_t)strlen(z)); }

/* ACTION: HEAD; from=<..> ...: cut at the last '; from=<' (or '; proto='), see body.py */
typedef struct { S action, head, tail; } HeadTail;
static HeadTail head_tail(S body) {
    HeadTail r;
    r.action = split(body, LIT(": "), 1);
    Py_ssize_t tail_at = rfind1(body, LIT("; from=<"));
    if (!tail_at) tail_at = rfind1(body, LIT("; proto="));
    Py_ssize_t start = r.action.n + 2;  /* 0-based */
    if (tail_at > 0) {
        Py_ssize_t len = tail_at - r.action.n - 3;
        r.head = len <= 0 ? mk(body.p + (start < body.n ? start : body.n), 0) : head(from(body, start), len);
        r.tail = from(body, tail_at + 1);
    } else {
        r.head = from(body, start);
        r.tail = NUL;
    }
    return r;
}

static void family_rows(Table *t, int kind, int32_t row, S body, S daemon, S host, const uint8_t *problem, const char **problem_reason) {
    (void)problem; (void)problem_reason;
    Col *c;
    switch (kind) {
    case K_delivery: {
        Table *f = &t[F_DELIVERY]; c = f->cols; f->rows++;
        Py_ssize_t po = find(body, LIT(" ("));
        S pre = po < 0 ? body : head(body, po);
        S rcpt = split(from(body, 4), LIT(">, "), 1);
        Py_ssize_t oi = find(pre, LIT(", orig_to=<"));
        S orig = oi < 0 ? NUL : split(from(pre, oi + 11), LIT(">, "), 1);
        S delay = kv(pre, "delay"), delays = kv(pre, "delays");
        S response = NUL;
        if (ends(body, LIT(")")) && body.n > pre.n + 2) response = mk(body.p + pre.n + 2, body.n - pre.n - 3);
        /* ' queued as [0-9A-Za-z]{6,20}\)$' */
        S child = NUL;
        if (ends(body, LIT(")"))) {
            Py_ssize_t e = body.n - 1, s = e;
            while (s > 0 && (isdig(body.p[s - 1]) || (body.p[s - 1] >= 'A' && body.p[s - 1] <= 'Z')
                             || (body.p[s - 1] >= 'a' && body.p[s - 1] <= 'z'))) s--;
            if (e - s >= 6 && e - s <= 20 && s >= 11 && memcmp(body.p + s - 11, " queued as ", 11) == 0)
                child = mk(body.p + s, e - s);
        }
        double dv;
        put_i32(&c[0], 1, row);
        put_s(&c[1], rcpt);
        put_s(&c[2], orig);
        put_s(&c[3], kv(pre, "relay"));
        int ok = to_f64(delay, &dv);
        put_f64(&c[4], ok, dv);
        put_s(&c[5], kv(pre, "dsn"));
        put_s(&c[6], kv(pre, "status"));
        put_s(&c[7], response);
        put_s(&c[8], child.n < 0 ? NUL : LS("queued as"));
        put_s(&c[9], child);
        put_s(&c[10], response.n < 0 ? NUL : code_of(split_last(response, LIT("said: "))));
        /* string_split(delays, '/')[k]: NULL past the end */
        S rest = delays;
        for (int k = 0; k < 4; k++) {
            S v = rest.n < 0 ? NUL : split(rest, LIT("/"), 1);
            ok = v.n >= 0 && to_f64(v, &dv);
            put_f64(&c[11 + k], ok, dv);
            if (rest.n >= 0) {
                Py_ssize_t at = findc(rest, '/');
                rest = at < 0 ? NUL : from(rest, at + 1);
            }
        }
        break;
    }
    case K_queued: case K_expired: {
        Table *f = &t[F_QUEUE]; c = f->cols; f->rows++;
        int64_t v;
        put_i32(&c[0], 1, row);
        put_s(&c[1], addr(body, "from"));
        put_s(&c[2], kind == K_expired ? LS("expired") : NUL);
        int ok = to_i64(kv(body, "size"), &v, INT64_MIN + 1, INT64_MAX);
        put_i64(&c[3], ok, v);
        S nr = kv(body, "nrcpt");
        ok = nr.n >= 0 && to_i64(split(nr, LIT(" "), 1), &v, INT32_MIN, INT32_MAX);
        put_i32(&c[4], ok, v);
        break;
    }
    case K_pickup: {
        Table *f = &t[F_PICKUP]; c = f->cols; f->rows++;
        put_i32(&c[0], 1, row);
        put_s(&c[1], addr(body, " from"));
        put_s(&c[2], body);
        break;
    }
    case K_client: {
        Table *f = &t[F_CLIENT]; c = f->cols; f->rows++;
        S v = from(body, 7), cl = split(v, LIT(", "), 1);
        put_i32(&c[0], 1, row);
        put_s(&c[1], host_of(cl));
        put_s(&c[2], ip_of(cl));
        put_s(&c[3], kv(v, "sasl_method"));
        put_s(&c[4], kv(v, "sasl_username"));
        break;
    }
    case K_message_id: case K_resent_message_id: {
        Table *f = &t[F_MESSAGE_ID]; c = f->cols; f->rows++;
        Py_ssize_t at = findc(body, '=');
        S v = from(body, at + 1);
        if (v.n >= 2 && v.p[0] == '<' && v.p[v.n - 1] == '>') v = mk(v.p + 1, v.n - 2);
        put_i32(&c[0], 1, row);
        put_s(&c[1], v);
        break;
    }
    case K_notify: {
        Table *f = &t[F_NOTIFY]; c = f->cols; f->rows++;
        put_i32(&c[0], 1, row);
        put_s(&c[1], split(body, LIT(" notification: "), 1));
        put_s(&c[2], split(body, LIT(" notification: "), 2));
        break;
    }
    case K_reject: {
        Table *f = &t[F_REJECT]; c = f->cols; f->rows++;
        HeadTail ht = head_tail(body);
        S hd = ht.head, tail = ht.tail;
        S cl = split(split(hd, LIT(" from "), 2), LIT(": "), 1);
        Py_ssize_t fi = find(hd, LIT(" from "));  /* instr: 0 when absent */
        Py_ssize_t start0 = (fi + 1) + cl.n + 7;    /* 1-based instr + len(c) + 8, as 0-based */
        S reply = from(hd, start0);
        S proto = NUL;
        if (tail.n >= 0) proto = rtrim_c(split(split(tail, LIT("proto="), 2), LIT(" "), 1), ',');
        put_i32(&c[0], 1, row);
        put_s(&c[1], ht.action);
        put_s(&c[2], split(hd, LIT(" "), 1));
        put_s(&c[3], host_of(cl));
        put_s(&c[4], ip_of(cl));
        put_s(&c[5], reply);
        put_s(&c[6], code_of(reply));
        put_s(&c[7], dsn_of(reply));
        put_s(&c[8], addr(tail, "from"));
        put_s(&c[9], addr(tail, " to"));
        put_s(&c[10], addr(tail, "helo"));
        put_s(&c[11], proto);
        break;
    }
    case K_header_action: {
        Table *f = &t[F_HEADER_ACTION]; c = f->cols; f->rows++;
        HeadTail ht = head_tail(body);
        S hd = ht.head, tail = ht.tail;
        S stage = split(hd, LIT(" "), 1);
        Py_ssize_t rf = rfind1(hd, LIT(" from "));
        Py_ssize_t clen = rf - stage.n - 2;
        if (clen < 0) clen = 0;
        S check = head(from(hd, stage.n + 1), clen);
        S cl = rf ? from(hd, rf + 5) : from(hd, 5);
        S helo = addr(tail, "helo");
        S response = NUL;
        Py_ssize_t hi = tail.n >= 0 ? find(tail, LIT(" helo=<")) : -1;
        if (hi >= 0) {
            S r = ltrim_set(from(tail, hi + 8 + (helo.n < 0 ? 0 : helo.n)), ": ");
            response = r.n == 0 ? NUL : r;
        }
        put_i32(&c[0], 1, row);
        put_s(&c[1], ht.action);
        put_s(&c[2], stage);
        put_s(&c[3], check);
        put_s(&c[4], host_of(cl));
        put_s(&c[5], ip_of(cl));
        put_s(&c[6], addr(tail, "from"));
        put_s(&c[7], addr(tail, " to"));
        put_s(&c[8], helo);
        put_s(&c[9], response);
        put_s(&c[10], dsn_of(response.n < 0 ? mk("", 0) : response));
        break;
    }
    case K_tls: {
        Table *f = &t[F_TLS]; c = f->cols; f->rows++;
        int64_t v;
        S bits = ltrim_set(split(split(body, LIT(" "), 11), LIT("/"), 1), "(");
        put_i32(&c[0], 1, row);
        put_s(&c[1], split(body, LIT(" "), 1));
        put_s(&c[2], split(body, LIT(" "), 5));
        put_s(&c[3], rtrim_c(split(body, LIT(" "), 6), ':'));
        put_s(&c[4], split(body, LIT(" "), 7));
        put_s(&c[5], split(body, LIT(" "), 10));
        int ok = to_i64(bits, &v, INT32_MIN, INT32_MAX);
        put_i32(&c[6], ok, v);
        break;
    }
    case K_connect: case K_disconnect: case K_lost_connection: {
        Table *f = &t[F_CONNECTION]; c = f->cols; f->rows++;
        S cl = split(split(body, LIT(" from "), 2), LIT(" "), 1);
        put_i32(&c[0], 1, row);
        put_s(&c[1], host_of(cl));
        put_s(&c[2], ip_of(cl));
        put_s(&c[3], kind == K_lost_connection ? split(split(body, LIT(" after "), 2), LIT(" "), 1) : NUL);
        put_s(&c[4], kind != K_connect ? body : NUL);
        break;
    }
    case K_connect_failed: {
        Table *f = &t[F_CONNECT_FAILED]; c = f->cols; f->rows++;
        put_i32(&c[0], 1, row);
        put_s(&c[1], split(from(body, 11), LIT(": "), 1));
        put_s(&c[2], body);
        break;
    }
    case K_sasl_failed: {
        Table *f = &t[F_SASL_FAILED]; c = f->cols; f->rows++;
        S cl = split(from(body, 9), LIT(": "), 1);
        put_i32(&c[0], 1, row);
        put_s(&c[1], host_of(cl));
        put_s(&c[2], ip_of(cl));
        put_s(&c[3], split(split(body, LIT(": SASL "), 2), LIT(" "), 1));
        put_s(&c[4], body);
        break;
    }
    case K_postscreen: {
        Table *f = &t[F_POSTSCREEN]; c = f->cols; f->rows++;
        int v = starts_list(body, POSTSCREEN_VERDICTS);
        put_i32(&c[0], 1, row);
        put_s(&c[1], split(split(body, LIT("["), 2), LIT("]"), 1));
        put_s(&c[2], v ? LS(POSTSCREEN_VERDICTS[v - 1]) : mk("", 0));
        break;
    }
    case K_dkim_sign: case K_dkim_skip: case K_dkim_verify: {
        Table *f = &t[F_DKIM]; c = f->cols; f->rows++;
        S result = NUL;
        if (kind == K_dkim_verify) {
            if (starts(body, LIT("DKIM verification successful"))) result = LS("pass");
            else if (starts(body, LIT("no signature data")) || starts(body, LIT("no signing table match"))) result = LS("none");
            else result = LS("fail");
        }
        put_i32(&c[0], 1, row);
        put_s(&c[1], kind == K_dkim_sign ? split(split(body, LIT("d="), 2), LIT(")"), 1) : NUL);
        put_s(&c[2], kind == K_dkim_sign ? split(split(body, LIT("(s="), 2), LIT(","), 1) : NUL);
        put_s(&c[3], result);
        put_s(&c[4], body);
        break;
    }
    case K_smtp_reply: case K_hold: case K_release: case K_requeue: {
        Table *f = &t[F_INFO]; c = f->cols; f->rows++;
        put_i32(&c[0], 1, row);
        put_s(&c[1], body);
        break;
    }
    default:
        break;
    }
    (void)daemon; (void)host;
}

static int kind_of(const Header *h, int problem, int is_postfix, S tag, S daemon, S qid0, S body) {
    if (problem || !h->len || !h->ts_ok) return K_unparsed;
    if (!is_postfix && eq(tag, LIT("opendkim")) && qid0.n > 0 && !eq(qid0, LIT("NOQUEUE"))) {
        if (starts(body, LIT("DKIM-Signature field added"))) return K_dkim_sign;
        if (starts(body, LIT("DKIM-Signature field skipped"))) return K_dkim_skip;
        return K_dkim_verify;
    }
    if (!is_postfix) return K_other_program;
    if (eq(qid0, LIT("NOQUEUE"))) return is_reject_shape(body) ? K_reject : K_unknown;
    if (qid0.n > 0) {
        if (starts(body, LIT("to=<")) && contains(body, LIT(", status="))) return K_delivery;
        if (eq(body, LIT("removed"))) return K_removed;
        if (starts(body, LIT("from=<")) && contains(body, LIT(", status=expired"))) return K_expired;
        if (starts(body, LIT("from=<")) && contains(body, LIT(", nrcpt="))) return K_queued;
        if (starts(body, LIT("client="))) return K_client;
        if (starts(body, LIT("message-id="))) return K_message_id;
        if (starts(body, LIT("resent-message-id="))) return K_resent_message_id;
        if (starts(body, LIT("uid=")) && contains(body, LIT(" from=<"))) return K_pickup;
        if (eq(daemon, LIT("bounce")) && contains(body, LIT(" notification: "))) return K_notify;
        if (eq(daemon, LIT("cleanup")) && is_check_shape(body)) return K_header_action;
        if (is_reject_shape(body)) return K_reject;
        if (eq(body, LIT("placed on hold"))) return K_hold;
        if (eq(body, LIT("released from hold"))) return K_release;
        if (eq(body, LIT("requeued"))) return K_requeue;
        if (starts(body, LIT("host ")) && contains(body, LIT(" said: "))) return K_smtp_reply;
        if (starts(body, LIT("lost connection with ")) || starts(body, LIT("conversation with "))) return K_smtp_reply;
        if (starts(body, LIT("enabling PIX workarounds"))) return K_smtp_reply;
        if (starts(body, LIT("warning: ")) || starts(body, LIT("error: "))) return K_warning;
        return K_unknown;
    }
    if (in_list(daemon, QUIET_DAEMONS)) return K_noise;
    if (eq(daemon, LIT("postscreen")) && starts_list(body, POSTSCREEN_VERDICTS)) return K_postscreen;
    if (starts(body, LIT("connect from "))) return K_connect;
    if (starts(body, LIT("disconnect from "))) return K_disconnect;
    if (starts(body, LIT("lost connection after ")) || starts(body, LIT("timeout after "))) return K_lost_connection;
    if (contains(body, LIT(" TLS connection established "))) return K_tls;
    if (starts(body, LIT("connect to "))) return K_connect_failed;
    if (starts(body, LIT("warning: ")) && contains(body, LIT(" authentication failed")) && contains(body, LIT(": SASL ")))
        return K_sasl_failed;
    if (starts(body, LIT("warning: hostname ")) && contains(body, LIT(" does not resolve to address "))) return K_fcrdns_failed;
    if (starts(body, LIT("warning: ")) || starts(body, LIT("error: ")) || starts(body, LIT("fatal: ")) || starts(body, LIT("panic: ")))
        return K_warning;
    if (starts(body, LIT("statistics: ")) || starts(body, LIT("improper command pipelining")) || starts(body, LIT("Anonymous TLS"))
        || starts(body, LIT("SSL_accept error")) || starts(body, LIT("too many errors")) || starts(body, LIT("NOQUEUE: ")))
        return K_noise;
    return K_unknown;
}

/* ---- Python glue -------------------------------------------------------------------- */

static PyObject *bitmap(const Col *c) {
    if (!c->nulls) Py_RETURN_NONE;
    Py_ssize_t nb = (c->n + 7) / 8;
    PyObject *b = PyBytes_FromStringAndSize(NULL, nb);
    if (!b) return NULL;
    uint8_t *o = (uint8_t *)PyBytes_AS_STRING(b);
    memset(o, 0, (size_t)nb);
    for (Py_ssize_t i = 0; i < c->n; i++)
        if (c->valid[i]) o[i >> 3] |= (uint8_t)(1 << (i & 7));
    return b;
}

static void free_capsule(PyObject *cap) { free(PyCapsule_GetPointer(cap, "pi_buffer")); }

/* (address, size, owner): a malloc'd buffer handed to Python without a copy; freed with its owner */
static PyObject *hand_over(void *p, Py_ssize_t size) {
    if (!p) { p = malloc(8); if (!p) return PyErr_NoMemory(); size = 0; }
    PyObject *cap = PyCapsule_New(p, "pi_buffer", free_capsule);
    if (!cap) { free(p); return NULL; }
    return Py_BuildValue("(KnN)", (unsigned long long)(uintptr_t)p, size, cap);
}

static PyObject *export_col(Col *c) {
    PyObject *valid = bitmap(c);
    if (!valid) return NULL;
    PyObject *b1, *b2 = NULL;
    if (c->type == T_DICT) {  /* (indices, (dictionary offsets, dictionary data, its length)) */
        if (!c->off) { c->off = calloc(1, sizeof(int64_t)); if (!c->off) { Py_DECREF(valid); return PyErr_NoMemory(); } }
        b1 = hand_over(c->num, c->n * 4);
        c->num = NULL;
        PyObject *o = b1 ? hand_over(c->off, (c->ndict + 1) * 8) : NULL;
        c->off = NULL;
        PyObject *d = o ? hand_over(c->data, c->dlen) : NULL;
        c->data = NULL;
        b2 = d ? Py_BuildValue("(NNn)", o, d, c->ndict) : NULL;
        if (!d) Py_XDECREF(o);
        if (!b2) { Py_XDECREF(b1); Py_DECREF(valid); return NULL; }
    } else if (c->type == T_STR) {
        if (!c->off) { c->off = calloc(1, sizeof(int64_t)); if (!c->off) { Py_DECREF(valid); return PyErr_NoMemory(); } }
        b1 = hand_over(c->off, (c->n + 1) * 8);
        c->off = NULL;
        b2 = b1 ? hand_over(c->data, c->dlen) : NULL;
        c->data = NULL;
        if (!b2) { Py_XDECREF(b1); Py_DECREF(valid); return NULL; }
    } else {
        size_t el = c->type == T_U8 ? 1 : c->type == T_I32 ? 4 : 8;
        b1 = hand_over(c->num, c->n * (Py_ssize_t)el);
        c->num = NULL;
        if (!b1) { Py_DECREF(valid); return NULL; }
        Py_INCREF(Py_None);
        b2 = Py_None;
    }
    return Py_BuildValue("(sCnNNN)", c->name, c->type, c->nulls, valid, b1, b2);
}

static PyObject *export_tables(Table *t) {
    PyObject *d = PyDict_New();
    if (!d) return NULL;
    for (int f = 0; f < F_COUNT; f++) {
        PyObject *cols = PyList_New(t[f].ncol);
        if (!cols) { Py_DECREF(d); return NULL; }
        for (int i = 0; i < t[f].ncol; i++) {
            PyObject *c = export_col(&t[f].cols[i]);
            if (!c) { Py_DECREF(cols); Py_DECREF(d); return NULL; }
            PyList_SET_ITEM(cols, i, c);
        }
        PyObject *entry = Py_BuildValue("(nN)", t[f].rows, cols);
        if (!entry || PyDict_SetItemString(d, t[f].name, entry) < 0) { Py_XDECREF(entry); Py_DECREF(d); return NULL; }
        Py_DECREF(entry);
    }
    return d;
}

/* The sizes of the last batch's tables, scaled to the next batch's lines, are where its
   columns start: batches are alike, and a column grown by doubling copies itself each
   time (in a 170k-line batch, ~8 times from 1024 rows). Only hints: two threads parsing
   the halves of a batch may overwrite each other's. */
static Py_ssize_t ROWS_PER_MLINE[F_COUNT];          /* rows per million lines */
static Py_ssize_t BYTES_PER_KROW[F_COUNT][MAXCOL];  /* string bytes per thousand rows */

static void presize(Table *t, Py_ssize_t n) {
    for (int f = 0; f < F_COUNT; f++) {
        Py_ssize_t rows = f == F_EV1 ? n
            : (Py_ssize_t)((double)n * (double)__atomic_load_n(&ROWS_PER_MLINE[f], __ATOMIC_RELAXED) / 1e6);
        if (rows <= 1024) continue;
        for (int i = 0; i < t[f].ncol; i++) {
            Col *c = &t[f].cols[i];
            col_grow(c, rows + 2);
            Py_ssize_t bytes = rows / 1000 * __atomic_load_n(&BYTES_PER_KROW[f][i], __ATOMIC_RELAXED);
            if (c->type == T_STR && bytes > 0 && grow((void **)&c->data, &c->dcap, bytes, 1)) c->oom = 1;
        }
    }
}
static void remember_sizes(const Table *t, Py_ssize_t n) {
    if (n < 1000) return;  /* a few pushed lines say little about a file's batches */
    for (int f = 0; f < F_COUNT; f++) {
        Py_ssize_t rows = t[f].rows;
        __atomic_store_n(&ROWS_PER_MLINE[f], (Py_ssize_t)((double)rows * 1.1e6 / (double)n), __ATOMIC_RELAXED);
        for (int i = 0; i < t[f].ncol; i++) {
            const Col *c = &t[f].cols[i];
            if (c->type == T_STR && rows)
                __atomic_store_n(&BYTES_PER_KROW[f][i], (Py_ssize_t)((double)c->dlen * 1.1e3 / (double)rows), __ATOMIC_RELAXED);
        }
    }
}

static int get_buffers(PyObject *args, Py_buffer *data, Py_buffer *offs, Py_buffer *problem, Py_buffer *years, int *with_body) {
    if (with_body) {
        if (!PyArg_ParseTuple(args, "y*y*y*y*p", data, offs, problem, years, with_body)) return -1;
    } else {
        if (!PyArg_ParseTuple(args, "y*y*", data, offs)) return -1;
    }
    return 0;
}

/* months(data, offsets) -> (month per line as int8 bytes, 0 = none; day as int8 bytes, -1 = none) */
static PyObject *py_months(PyObject *self, PyObject *args) {
    Py_buffer data, offs;
    if (get_buffers(args, &data, &offs, NULL, NULL, NULL) < 0) return NULL;
    Py_ssize_t n = offs.len / 8 - 1;
    const int64_t *o = offs.buf;
    const char *base = data.buf;
    PyObject *mon = PyBytes_FromStringAndSize(NULL, n > 0 ? n : 0);
    PyObject *day = PyBytes_FromStringAndSize(NULL, n > 0 ? n : 0);
    if (mon && day) {
        int8_t *m = (int8_t *)PyBytes_AS_STRING(mon), *d = (int8_t *)PyBytes_AS_STRING(day);
        for (Py_ssize_t r = 0; r < n; r++) {
            S l = mk(base + o[r], o[r + 1] - o[r]);
            m[r] = l.n >= 3 ? (int8_t)month_of(l.p) : 0;
            /* TRY_CAST(trim(substr(line, 5, 2)) AS TINYINT) */
            int64_t v;
            d[r] = to_i64(head(from(l, 4), 2), &v, 0, 127) ? (int8_t)v : -1;
        }
    }
    PyBuffer_Release(&data);
    PyBuffer_Release(&offs);
    if (!mon || !day) { Py_XDECREF(mon); Py_XDECREF(day); return NULL; }
    return Py_BuildValue("(NN)", mon, day);
}

/* parse(data, offsets int64, problem uint8, years int16, with_body) -> {table: (rows, [(name, type, nulls, validity, buf1, buf2)])};
   buffers come as (address, size, owner), see hand_over */
static PyObject *py_parse(PyObject *self, PyObject *args) {
    Py_buffer data, offs, prob, yrs;
    int with_body = 1;
    if (get_buffers(args, &data, &offs, &prob, &yrs, &with_body) < 0) return NULL;
    Py_ssize_t n = offs.len / 8 - 1;
    if (n < 0 || prob.len < n || yrs.len < 2 * n) {
        PyBuffer_Release(&data); PyBuffer_Release(&offs); PyBuffer_Release(&prob); PyBuffer_Release(&yrs);
        PyErr_SetString(PyExc_ValueError, "offsets, problem and years disagree on the line count");
        return NULL;
    }
    const int64_t *o = offs.buf;
    const uint8_t *pr = prob.buf;
    const int16_t *yr = yrs.buf;
    const char *base = data.buf;
    Table *t = calloc(F_COUNT, sizeof(Table));
    if (!t) { PyBuffer_Release(&data); PyBuffer_Release(&offs); PyBuffer_Release(&prob); PyBuffer_Release(&yrs); return PyErr_NoMemory(); }
    int oom = 0;
    Py_BEGIN_ALLOW_THREADS
    init_tables(t);
    presize(t, n);
    Table *ev = &t[F_EV1];
    for (Py_ssize_t r = 0; r < n; r++) {
        S line = mk(base + o[r], o[r + 1] - o[r]);
        Header h;
        if (pr[r]) { memset(&h, 0, sizeof h); h.pid = NUL; }
        else parse_header(line, yr[r], &h);
        S msg = from(line, h.len);
        S tag = h.len ? h.tag : NUL;
        int is_postfix = tag.n >= 0 && starts(tag, LIT("postfix")) && findc(tag, '/') >= 0;
        S instance = NUL, daemon = tag, service = NUL;
        if (is_postfix) {
            Py_ssize_t a = findc(tag, '/');
            instance = head(tag, a);
            Py_ssize_t z = rfind(tag, LIT("/"));
            daemon = from(tag, z + 1);
            if (z != a) service = split(from(tag, a + 1), LIT("/"), 1);
            else service = daemon;
        }
        Py_ssize_t ql = queue_id_len(msg);
        S qid0 = ql ? head(msg, ql) : mk("", 0);
        S body = ql ? from(msg, ql + 2) : msg;
        int64_t pid = 0;
        int pid_ok = h.len && h.pid.n > 0 && to_i64(h.pid, &pid, INT32_MIN, INT32_MAX);
        int kind = kind_of(&h, pr[r], is_postfix, tag, daemon, qid0, body);
        Col *c = ev->cols;
        ev->rows++;
        put_i64(&c[0], h.len && h.ts_ok, h.ts);
        put_u8(&c[1], (uint8_t)h.iso);
        put_d(&c[2], h.len ? h.host : NUL);
        put_i32(&c[3], pid_ok, pid);
        put_d(&c[4], instance);
        put_d(&c[5], daemon);
        put_d(&c[6], service);
        put_s(&c[7], with_body ? body : NUL);  /* only the reference comparison reads it */
        put_s(&c[8], (qid0.n == 0 || eq(qid0, LIT("NOQUEUE"))) ? NUL : qid0);
        put_u8(&c[9], (uint8_t)kind);
        int32_t row = (int32_t)r;
        switch (kind) {
        case K_unparsed: case K_unknown: case K_warning: case K_other_program: case K_noise: {
            Table *f = &t[F_NOT_PARSED]; Col *nc = f->cols; f->rows++;
            put_i32(&nc[0], 1, row);
            put_s(&nc[1], (kind == K_warning || kind == K_unknown) ? body : NUL);
            char buf[40];
            S reason;
            if (kind == K_unparsed) reason = pr[r] ? mk("", 0) /* filled from problem in Python */ : (!h.len ? LS("bad_header") : LS("bad_timestamp"));
            else if (kind == K_unknown) {
                if (in_list(daemon, NAMED_DAEMONS) && daemon.n < 30) {
                    memcpy(buf, "unknown_", 8);
                    memcpy(buf + 8, daemon.p, (size_t)daemon.n);
                    reason = mk(buf, 8 + daemon.n);
                } else reason = LS("unknown_daemon");
            } else if (kind == K_warning) reason = split(body, LIT(":"), 1);
            else reason = LS(KIND_NAMES[kind]);
            put_s(&nc[2], reason);
            break;
        }
        default:
            family_rows(t, kind, row, body, daemon, h.host, NULL, NULL);
        }
    }
    for (int f = 0; f < F_COUNT; f++)
        for (int i = 0; i < t[f].ncol; i++) oom |= t[f].cols[i].oom;
    remember_sizes(t, n);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&data); PyBuffer_Release(&offs); PyBuffer_Release(&prob); PyBuffer_Release(&yrs);
    PyObject *res = oom ? PyErr_NoMemory() : export_tables(t);
    for (int f = 0; f < F_COUNT; f++) table_free(&t[f]);
    free(t);
    return res;
}

/* ---- splitting a chunk into lines ---------------------------------------------------- */

/* The chunk's byte classes, or-ed: 1 when it has a byte the fast split leaves to the careful
   one (a control byte other than tab and newline: binary junk, the CR of CRLF endings; or
   DEL), 2 when it has a byte over 127 (not plain ASCII, so its UTF-8 needs checking). A
   branch-free loop the compiler vectorises: it scans every byte read. */
__attribute__((optimize("O3")))
static int byte_classes(const unsigned char *p, Py_ssize_t n) {
    unsigned char acc = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char c = p[i];
        acc |= (unsigned char)(((c < 32) & (c != 9) & (c != 10)) | (c == 127) | ((c >> 7) << 1));
    }
    return acc;
}

/* split(chunk, max_line_bytes) -> (data, offsets, lines, ascii) or None.
   The chunk's lines as the buffers of an Arrow string array: data is the text without the
   newlines, offsets (int32) bound each line; blank lines are dropped; ascii: every byte is
   (no UTF-8 to validate). None when a line needs the careful split (control bytes, a line
   over max_line_bytes, 2 GB or more). */
static PyObject *py_split(PyObject *self, PyObject *args) {
    Py_buffer in;
    Py_ssize_t max_line;
    if (!PyArg_ParseTuple(args, "y*n", &in, &max_line)) return NULL;
    const unsigned char *p = in.buf;
    const Py_ssize_t len = in.len;
    char *data = NULL;
    int32_t *off = NULL;
    Py_ssize_t lines = 0, dlen = 0;
    int fast = len < INT32_MAX, nomem = 0, classes = 0;
    Py_BEGIN_ALLOW_THREADS
    if (fast) classes = byte_classes(p, len);
    if (classes & 1) fast = 0;
    if (fast) {
        Py_ssize_t cap = 1;  /* lines: newlines, plus a last line without one */
        for (const unsigned char *q = p, *end = p + len; q < end; q++) {
            q = memchr(q, '\n', (size_t)(end - q));
            if (!q) break;
            cap++;
        }
        data = malloc(len > 0 ? (size_t)len : 1);
        off = malloc((size_t)(cap + 1) * sizeof(int32_t));
        if (!data || !off) nomem = 1, fast = 0;
        for (Py_ssize_t at = 0; fast && at < len;) {
            const unsigned char *nl = memchr(p + at, '\n', (size_t)(len - at));
            Py_ssize_t stop = nl ? nl - p : len, n = stop - at;
            if (n > max_line) { fast = 0; break; }
            if (n > 0) {
                off[lines++] = (int32_t)dlen;
                memcpy(data + dlen, p + at, (size_t)n);
                dlen += n;
            }
            at = stop + 1;
        }
        if (fast) off[lines] = (int32_t)dlen;
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&in);
    if (!fast) {
        free(data);
        free(off);
        if (nomem) return PyErr_NoMemory();
        Py_RETURN_NONE;
    }
    PyObject *d = hand_over(data, dlen);
    if (!d) { free(off); return NULL; }
    PyObject *o = hand_over(off, (lines + 1) * (Py_ssize_t)sizeof(int32_t));
    if (!o) { Py_DECREF(d); return NULL; }
    return Py_BuildValue("(NNnO)", d, o, lines, (classes & 2) ? Py_False : Py_True);
}

static PyObject *py_kinds(PyObject *self, PyObject *noargs) {
    PyObject *tup = PyTuple_New(K_COUNT);
    if (!tup) return NULL;
    for (int i = 0; i < K_COUNT; i++) PyTuple_SET_ITEM(tup, i, PyUnicode_FromString(KIND_NAMES[i]));
    return tup;
}

static PyMethodDef METHODS[] = {
    {"parse", py_parse, METH_VARARGS, "parse(data, offsets, problem, years, with_body) -> column buffers of ev1 and each family"},
    {"months", py_months, METH_VARARGS, "months(data, offsets) -> (month, day) bytes per line"},
    {"kinds", py_kinds, METH_NOARGS, "kind names by code"},
    {"split", py_split, METH_VARARGS, "split(chunk, max_line_bytes) -> (data, offsets, lines, ascii) or None"},
    {NULL, NULL, 0, NULL},
};
static struct PyModuleDef MODULE = {PyModuleDef_HEAD_INIT, "_native", "Native single-pass log parser.", -1, METHODS};
PyMODINIT_FUNC PyInit__native(void) {
    /* Column buffers are up to tens of MB and live for one batch. A fixed mmap threshold
       keeps glibc from raising it after each free, without bound on what its heap keeps. At
       32 MB (the most glibc takes) the buffers of one batch reuse the heap memory the last
       one freed, where a fresh mapping would fault in every page again: on 5M lines ~0.9 s
       less system time and 3-4% less wall time, for ~40 MiB more peak RSS (BENCHMARKS.md). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    return PyModule_Create(&MODULE);
}
