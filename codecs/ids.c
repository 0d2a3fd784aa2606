/* codecs/ids.c -- see ids.h. */
#include "codecs/ids.h"

/* [A-Za-z0-9._-] */
const uint8_t sr_id_char[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int sr_path_ok(const char *p, size_t n)
{
    if (!n || n > SR_PATH_MAX || p[0] == '/' || p[n - 1] == '/') return 0;
    const char *seg = p;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || p[i] == '/') {
            size_t sl = (size_t)(p + i - seg);
            if (!sl || (sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.')) return 0;
            seg = p + i + 1;
        } else if (!sr_id_char[(unsigned char)p[i]])
            return 0;
    }
    return 1;
}

int sr_store_pattern_ok(int files, const char *pattern)
{
    size_t n = pattern ? strlen(pattern) : 0;
    if (n == 1 && pattern[0] == '*') return 1;
    if (n && pattern[n - 1] == '*') n--;
    if (!files) return sr_id_ok(pattern, n);
    if (n && pattern[n - 1] == '/') n--;
    return n <= SR_STORE_PREFIX_MAX && sr_path_ok(pattern, n);
}
