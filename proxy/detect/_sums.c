/* Summed gram weights straight from text: the scorer's hot loop without a Python object per gram.
 *
 * An optional speed-up of `proxy.detect.features.GramWeights` and of the lexicon's search for its
 * Chinese keys (see proxy/detect/native.py); the pure-Python path computes the same figures, and
 * tests/test_detect_native.py checks both on the same texts.
 * - A `Table` holds weights by exact key, either an integer (a code point, a character pair's
 *   code) or a string of at most five characters (a word stem), in one flat open-addressing
 *   array, and sums them over the distinct keys it reads from a text.
 * - A `StrTable` holds weights by any string, for grams that are Python strings anyway.
 * A Table marks the slots it has counted with a per-call stamp, so calls must not overlap: the
 * module does not declare free-threading support, so the GIL serialises them.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define STR_MAX 5
#define INT_KIND ((uint64_t)1 << 63)
#define EMPTY UINT64_MAX

typedef struct {
    uint64_t a, b;
    double w;
    uint32_t seen;
} Slot;

typedef struct {
    PyObject_HEAD
    Slot *slots;
    uint64_t mask;
    uint32_t stamp;
} Table;

static inline uint64_t mix(uint64_t a, uint64_t b) {
    uint64_t z = a ^ (b * 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static Slot *find_slot(Table *t, uint64_t a, uint64_t b) {
    uint64_t i = mix(a, b) & t->mask;
    for (;;) {
        Slot *s = &t->slots[i];
        if (s->b == EMPTY || (s->a == a && s->b == b)) {
            return s;
        }
        i = (i + 1) & t->mask;
    }
}

/* A string of at most STR_MAX code points (21 bits each) packed exactly, its length included. */
static int pack_str(PyObject *s, uint64_t *a, uint64_t *b) {
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    if (n < 1 || n > STR_MAX) {
        return -1;
    }
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    uint64_t c[STR_MAX] = {0};
    for (Py_ssize_t i = 0; i < n; i++) {
        c[i] = PyUnicode_READ(kind, data, i);
    }
    *a = c[0] | c[1] << 21 | c[2] << 42;
    *b = c[3] | c[4] << 21 | (uint64_t)n << 42;
    return 0;
}

/* The running sum's next stamp: a slot counts once per call, however often its key occurs. */
static uint32_t next_stamp(Table *t) {
    if (++t->stamp == 0) {
        for (uint64_t i = 0; i <= t->mask; i++) {
            t->slots[i].seen = 0;
        }
        t->stamp = 1;
    }
    return t->stamp;
}

static inline void add_key(Table *t, uint64_t a, uint64_t b, uint32_t stamp, double *sum) {
    Slot *s = find_slot(t, a, b);
    if (s->b != EMPTY && s->seen != stamp) {
        s->seen = stamp;
        *sum += s->w;
    }
}

/* The `weights` dict a table is made from, and the table's capacity: a power of two at which
 * the table is at most 2/3 full. */
static int read_weights(PyObject *args, PyObject *kwds, PyObject **weights, uint64_t *cap) {
    static char *kwlist[] = {"weights", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!", kwlist, &PyDict_Type, weights)) {
        return -1;
    }
    Py_ssize_t n = PyDict_GET_SIZE(*weights);
    *cap = 16;
    while (*cap < (uint64_t)n + (uint64_t)n / 2) {
        *cap <<= 1;
    }
    return 0;
}

static int Table_init(Table *self, PyObject *args, PyObject *kwds) {
    PyObject *weights;
    uint64_t cap;
    if (read_weights(args, kwds, &weights, &cap) < 0) {
        return -1;
    }
    Slot *slots = PyMem_Malloc(cap * sizeof(Slot));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (uint64_t i = 0; i < cap; i++) {
        slots[i].a = 0;
        slots[i].b = EMPTY;
        slots[i].w = 0.0;
        slots[i].seen = 0;
    }
    PyMem_Free(self->slots);
    self->slots = slots;
    self->mask = cap - 1;
    self->stamp = 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(weights, &pos, &key, &value)) {
        uint64_t a, b;
        if (PyLong_Check(key)) {
            a = PyLong_AsUnsignedLongLong(key);
            if (a == (uint64_t)-1 && PyErr_Occurred()) {
                return -1;
            }
            b = INT_KIND;
        } else if (!PyUnicode_Check(key) || pack_str(key, &a, &b) < 0) {
            PyErr_SetString(PyExc_ValueError, "keys must be non-negative ints or 1-5 char strings");
            return -1;
        }
        double w = PyFloat_AsDouble(value);
        if (w == -1.0 && PyErr_Occurred()) {
            return -1;
        }
        Slot *s = find_slot(self, a, b);
        s->a = a;
        s->b = b;
        s->w = w;
    }
    return 0;
}

static void Table_dealloc(Table *self) {
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int check_ready(Table *self) {
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_ValueError, "Table was not initialised");
        return -1;
    }
    return 0;
}

/* The summed weights of the distinct code points of `text`. */
static PyObject *Table_code_points_sum(Table *self, PyObject *text) {
    if (check_ready(self) < 0) {
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    uint32_t stamp = next_stamp(self);
    double sum = 0.0;
    for (Py_ssize_t i = 0; i < n; i++) {
        add_key(self, PyUnicode_READ(kind, data, i), INT_KIND, stamp, &sum);
    }
    return PyFloat_FromDouble(sum);
}

/* A character pair as `proxy.detect.text.pair_code` makes it: the two code points side by side
 * in UTF-32, read as one native 64-bit word. */
static inline uint64_t pair_key(Py_UCS4 first, Py_UCS4 second) {
#if PY_BIG_ENDIAN
    return (uint64_t)first << 32 | second;
#else
    return first | (uint64_t)second << 32;
#endif
}

/* Marks the table's keys among `keys` (an iterable of ints) as already counted this call. */
static int skip_keys(Table *self, PyObject *keys, uint32_t stamp) {
    PyObject *it = PyObject_GetIter(keys);
    if (it == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        uint64_t a = PyLong_AsUnsignedLongLong(item);
        Py_DECREF(item);
        if (a == (uint64_t)-1 && PyErr_Occurred()) {
            Py_DECREF(it);
            return -1;
        }
        Slot *s = find_slot(self, a, INT_KIND);
        if (s->b != EMPTY) {
            s->seen = stamp;
        }
    }
    Py_DECREF(it);
    return PyErr_Occurred() ? -1 : 0;
}

/* The summed weights of the distinct character pairs of `text`, leaving out the pairs in `skip`. */
static PyObject *Table_pairs_sum(Table *self, PyObject *args) {
    PyObject *text, *skip;
    if (!PyArg_ParseTuple(args, "UO", &text, &skip)) {
        return NULL;
    }
    if (check_ready(self) < 0) {
        return NULL;
    }
    uint32_t stamp = next_stamp(self);
    if (skip_keys(self, skip, stamp) < 0) {
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    double sum = 0.0;
    for (Py_ssize_t i = 0; i + 1 < n; i++) {
        uint64_t key = pair_key(PyUnicode_READ(kind, data, i), PyUnicode_READ(kind, data, i + 1));
        add_key(self, key, INT_KIND, stamp, &sum);
    }
    return PyFloat_FromDouble(sum);
}

/* The table's keys among the character pairs of `text`, each once, in order of first occurrence. */
static PyObject *Table_pairs_present(Table *self, PyObject *text) {
    if (check_ready(self) < 0) {
        return NULL;
    }
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
    PyObject *found = PyList_New(0);
    if (found == NULL) {
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    uint32_t stamp = next_stamp(self);
    for (Py_ssize_t i = 0; i + 1 < n; i++) {
        uint64_t key = pair_key(PyUnicode_READ(kind, data, i), PyUnicode_READ(kind, data, i + 1));
        Slot *s = find_slot(self, key, INT_KIND);
        if (s->b == EMPTY || s->seen == stamp) {
            continue;
        }
        s->seen = stamp;
        PyObject *code = PyLong_FromUnsignedLongLong(key);
        if (code == NULL || PyList_Append(found, code) < 0) {
            Py_XDECREF(code);
            Py_DECREF(found);
            return NULL;
        }
        Py_DECREF(code);
    }
    return found;
}

/* The summed weights of the distinct `stem`-character prefixes of `text`'s words: the runs
 * between whitespace (as str.split sees it) and the ASCII characters of `punct`. */
static PyObject *Table_stems_sum(Table *self, PyObject *args) {
    PyObject *text;
    Py_ssize_t stem;
    const char *punct;
    if (!PyArg_ParseTuple(args, "Uns", &text, &stem, &punct)) {
        return NULL;
    }
    if (check_ready(self) < 0) {
        return NULL;
    }
    if (stem < 1 || stem > STR_MAX) {
        PyErr_SetString(PyExc_ValueError, "stem must be 1 to 5 characters");
        return NULL;
    }
    unsigned char blank[128] = {0};
    for (const unsigned char *p = (const unsigned char *)punct; *p; p++) {
        if (*p < 128) {
            blank[*p] = 1;
        }
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    uint32_t stamp = next_stamp(self);
    double sum = 0.0;
    uint64_t c[STR_MAX] = {0};
    Py_ssize_t len = 0;
    for (Py_ssize_t i = 0; i <= n; i++) {
        Py_UCS4 ch = i < n ? PyUnicode_READ(kind, data, i) : ' ';
        if ((ch < 128 && blank[ch]) || Py_UNICODE_ISSPACE(ch)) {
            if (len) {
                uint64_t a = c[0] | c[1] << 21 | c[2] << 42;
                uint64_t b = c[3] | c[4] << 21 | (uint64_t)len << 42;
                add_key(self, a, b, stamp, &sum);
                memset(c, 0, sizeof c);
                len = 0;
            }
        } else if (len < stem) {
            c[len++] = ch; /* past the stem the word goes on, but its key is complete */
        }
    }
    return PyFloat_FromDouble(sum);
}

/* A StrTable: weights by any string, found by the string's own (cached) hash and compared on a
 * hash match; it holds a reference to each key. For the head's grams, which are strings anyway. */
typedef struct {
    Py_hash_t hash;
    PyObject *key;
    double w;
} StrSlot;

typedef struct {
    PyObject_HEAD
    StrSlot *slots;
    uint64_t mask;
} StrTable;

static StrSlot *str_slot(StrTable *t, PyObject *key, Py_hash_t hash) {
    uint64_t i = mix((uint64_t)hash, 0) & t->mask;
    for (;;) {
        StrSlot *s = &t->slots[i];
        if (s->key == NULL ||
            (s->hash == hash && (s->key == key || PyUnicode_Compare(s->key, key) == 0))) {
            return s;
        }
        i = (i + 1) & t->mask;
    }
}

static void str_clear(StrTable *self) {
    if (self->slots != NULL) {
        for (uint64_t i = 0; i <= self->mask; i++) {
            Py_XDECREF(self->slots[i].key);
        }
        PyMem_Free(self->slots);
        self->slots = NULL;
    }
}

static int StrTable_init(StrTable *self, PyObject *args, PyObject *kwds) {
    PyObject *weights;
    uint64_t cap;
    if (read_weights(args, kwds, &weights, &cap) < 0) {
        return -1;
    }
    str_clear(self);
    self->slots = PyMem_Calloc(cap, sizeof(StrSlot));
    if (self->slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = cap - 1;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(weights, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be strings");
            return -1;
        }
        Py_hash_t hash = PyObject_Hash(key);
        double w = PyFloat_AsDouble(value);
        if (hash == -1 || (w == -1.0 && PyErr_Occurred())) {
            return -1;
        }
        StrSlot *s = str_slot(self, key, hash);
        Py_INCREF(key);
        s->key = key;
        s->hash = hash;
        s->w = w;
    }
    return 0;
}

static void StrTable_dealloc(StrTable *self) {
    str_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The summed weights of `grams` (any iterable of str; a set, so each counts once). */
static PyObject *StrTable_grams_sum(StrTable *self, PyObject *grams) {
    if (self->slots == NULL) {
        PyErr_SetString(PyExc_ValueError, "StrTable was not initialised");
        return NULL;
    }
    PyObject *it = PyObject_GetIter(grams);
    if (it == NULL) {
        return NULL;
    }
    double sum = 0.0;
    PyObject *item;
    while ((item = PyIter_Next(it)) != NULL) {
        if (!PyUnicode_Check(item)) {
            Py_DECREF(item);
            Py_DECREF(it);
            PyErr_SetString(PyExc_TypeError, "grams must be strings");
            return NULL;
        }
        Py_hash_t hash = PyObject_Hash(item);
        if (hash == -1) {
            Py_DECREF(item);
            Py_DECREF(it);
            return NULL;
        }
        StrSlot *s = str_slot(self, item, hash);
        Py_DECREF(item);
        if (s->key != NULL) {
            sum += s->w;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        return NULL;
    }
    return PyFloat_FromDouble(sum);
}

static PyMethodDef StrTable_methods[] = {
    {"grams_sum", (PyCFunction)StrTable_grams_sum, METH_O,
     "The summed weights of grams (an iterable of str)."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject StrTableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "proxy.detect._sums.StrTable",
    .tp_doc = "Weights by string key, summed over the strings given.",
    .tp_basicsize = sizeof(StrTable),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)StrTable_init,
    .tp_dealloc = (destructor)StrTable_dealloc,
    .tp_methods = StrTable_methods,
};

static PyMethodDef Table_methods[] = {
    {"code_points_sum", (PyCFunction)Table_code_points_sum, METH_O,
     "The summed weights of the distinct code points of text."},
    {"pairs_sum", (PyCFunction)Table_pairs_sum, METH_VARARGS,
     "pairs_sum(text, skip): the summed weights of text's distinct character pairs not in skip."},
    {"pairs_present", (PyCFunction)Table_pairs_present, METH_O,
     "The table's keys among the character pairs of text, each once, in order."},
    {"stems_sum", (PyCFunction)Table_stems_sum, METH_VARARGS,
     "stems_sum(text, stem, punct): the summed weights of the distinct word stems of text."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject TableType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "proxy.detect._sums.Table",
    .tp_doc = "Weights by int or short-string key, summed over the distinct keys of a text.",
    .tp_basicsize = sizeof(Table),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Table_init,
    .tp_dealloc = (destructor)Table_dealloc,
    .tp_methods = Table_methods,
};

/* The characters of `proxy.detect.text`'s word tokens (`_WORD`): ASCII letters and digits, the
   apostrophe, and the Latin-1 to Latin Extended-B, Greek to Arabic, Devanagari and Hangul
   syllable ranges. */
static inline int is_word_char(Py_UCS4 c) {
    if (c < 0x80) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '\'';
    }
    return (c >= 0xc0 && c <= 0x24f) || (c >= 0x370 && c <= 0x6ff) ||
           (c >= 0x900 && c <= 0x97f) || (c >= 0xac00 && c <= 0xd7a3);
}

/* words(normalized): the word tokens of already normalised text, as `_WORD.findall` finds them. */
static PyObject *sums_words(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "text must be a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        return NULL;
    }
    Py_ssize_t i = 0;
    while (i < n) {
        if (!is_word_char(PyUnicode_READ(kind, data, i))) {
            i++;
            continue;
        }
        Py_ssize_t start = i;
        while (i < n && is_word_char(PyUnicode_READ(kind, data, i))) {
            i++;
        }
        PyObject *word = PyUnicode_Substring(text, start, i);
        if (word == NULL || PyList_Append(out, word) < 0) {
            Py_XDECREF(word);
            Py_DECREF(out);
            return NULL;
        }
        Py_DECREF(word);
    }
    return out;
}

static int add_new(PyObject *grams, PyObject *gram) {
    if (gram == NULL) {
        return -1;
    }
    int rc = PySet_Add(grams, gram);
    Py_DECREF(gram);
    return rc;
}

/* add_word_grams(grams, toks, stem): adds to the set `grams` each token, each pair of adjacent
 * tokens joined by a space, and the first `stem` characters plus "~" of each token longer than
 * `stem` + 1 characters, as `proxy.detect.features._word_grams` does. */
static PyObject *sums_add_word_grams(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *grams, *toks;
    Py_ssize_t stem;
    if (!PyArg_ParseTuple(args, "O!O!n", &PySet_Type, &grams, &PyList_Type, &toks, &stem)) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(toks);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!PyUnicode_Check(PyList_GET_ITEM(toks, i))) {
            PyErr_SetString(PyExc_TypeError, "tokens must be strings");
            return NULL;
        }
    }
    PyObject *space = PyUnicode_FromOrdinal(' ');
    PyObject *tilde = PyUnicode_FromOrdinal('~');
    if (space == NULL || tilde == NULL) {
        Py_XDECREF(space);
        Py_XDECREF(tilde);
        return NULL;
    }
    int rc = 0;
    for (Py_ssize_t i = 0; i < n && rc == 0; i++) {
        PyObject *tok = PyList_GET_ITEM(toks, i);
        rc = PySet_Add(grams, tok);
        if (rc == 0 && i + 1 < n) {
            PyObject *left = PyUnicode_Concat(tok, space);
            rc = left == NULL ? -1 : add_new(grams, PyUnicode_Concat(left, PyList_GET_ITEM(toks, i + 1)));
            Py_XDECREF(left);
        }
        if (rc == 0 && PyUnicode_GET_LENGTH(tok) > stem + 1) {
            PyObject *head = PyUnicode_Substring(tok, 0, stem);
            rc = head == NULL ? -1 : add_new(grams, PyUnicode_Concat(head, tilde));
            Py_XDECREF(head);
        }
    }
    Py_DECREF(space);
    Py_DECREF(tilde);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef sums_functions[] = {
    {"words", (PyCFunction)sums_words, METH_O, "The word tokens of already normalised text."},
    {"add_word_grams", (PyCFunction)sums_add_word_grams, METH_VARARGS,
     "add_word_grams(grams, toks, stem): adds the tokens' word grams to the set grams."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef sums_module = {
    PyModuleDef_HEAD_INIT, "_sums", "Summed gram weights straight from text.", -1, sums_functions, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__sums(void) {
    if (PyType_Ready(&TableType) < 0 || PyType_Ready(&StrTableType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&sums_module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Table", (PyObject *)&TableType) < 0 ||
        PyModule_AddObjectRef(m, "StrTable", (PyObject *)&StrTableType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
