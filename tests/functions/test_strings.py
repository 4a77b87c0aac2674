from mailroom.formats.types import SqlType as T

S, I, BY = T.STRING, T.INT, T.BYTES


def s(v):
    return (S, v)


def i(v):
    return (I, v)


def test_substring(call):
    assert call("SUBSTRING", s("some_string"), i(6)) == "string"
    assert call("SUBSTRING", s("another"), i(6), i(3)) == "er"
    assert call("SUBSTRING", s("short"), i(6), i(3)) == ""
    assert call("SUBSTRING", s("some string"), i(0), i(2)) == "so"
    assert call("SUBSTRING", s(None), i(1)) is None
    assert call("SUBSTRING", s("abc"), i(None)) is None
    assert call("SUBSTRING", (BY, b"some_string"), i(6), i(3)) == b"str"


def test_concat_and_concat_ws(call):
    assert call("CONCAT", s("prefix-"), s("s1"), s("-postfix")) == "prefix-s1-postfix"
    assert call("CONCAT", (BY, b"yes"), (None, None), (BY, b"no")) == b"yesno"
    args = [s("SEP"), s("foo"), s(None), s("baz"), (None, None), s("literal")]
    assert call("CONCAT_WS", *args) == "fooSEPbazSEPliteral"
    assert call("CONCAT_WS", s(None), s("foo")) is None
    assert call("CONCAT_WS", s("SEP"), s(None), s(None), s("literal")) == "literal"


def test_len_split_pad(call):
    assert call("LEN", s("ABC")) == 3 and call("LEN", (BY, b"abc")) == 3 and call("LEN", s(None)) is None
    assert call("SPLIT", s("..a.."), s(".")) == ["", "", "a", "", ""]
    assert call("SPLIT", s("abc"), s("")) == ["a", "b", "c"]
    assert call("SPLIT", s(""), s(".")) == [""]
    assert call("SPLIT", (BY, b"a.b"), (BY, b".")) == [b"a", b"b"]
    assert call("REGEXP_SPLIT_TO_ARRAY", s("aabdcda"), s("(ab|cd)")) == ["a", "d", "a"]
    assert call("LPAD", s("foo"), i(7), s("Bar")) == "BarBfoo"
    assert call("RPAD", s("foo"), i(5), s("Bar")) == "fooBa"
    assert call("LPAD", s("foo"), i(2), s("Bar")) == "fo"
    assert call("LPAD", s("foo"), i(-1), s("Bar")) is None
    assert call("LPAD", s("foo"), i(7), s("")) is None
    assert call("RPAD", s(""), i(7), s("Bar")) == "BarBarB"


def test_chr_elt_field_md5(call):
    assert call("CHR", i(75)) == "K"
    assert call("CHR", i(22909)) == "\u597d"
    assert call("CHR", i(99000)) == "\U000182b8"
    assert call("CHR", i(-1)) is None
    assert call("CHR", s("\\u004b")) == "K"
    assert call("CHR", s("\\ud820\\udeb8")) == "\U000182b8"
    assert call("CHR", s("75")) is None and call("CHR", s("bogus")) is None
    assert call("ELT", i(2), s("ignored"), s("something")) == "something"
    assert call("ELT", i(3), s("a"), s("b")) is None
    assert call("FIELD", s("hello"), s("world"), s("hello")) == 2
    assert call("FIELD", s("hello"), s(None), s(None)) == 0
    assert call("MD5", s("r1")) == "7c92cf1eee8d99cc85f8355a3d6e4b86"
    assert call("MD5", s("")) == "d41d8cd98f00b204e9800998ecf8427e"


def test_case_trim_mask_regex(call):
    assert call("UCASE", s("aBc")) == "ABC" and call("LCASE", s("aBc")) == "abc"
    assert call("INITCAP", s("the QUICK brown")) == "The Quick Brown"
    assert call("TRIM", s("  x y  ")) == "x y"
    assert call("MASK", s("Ab1-")) == "Xxn-"
    assert call("MASK_KEEP_LEFT", s("Abcd12"), i(2)) == "Abxxnn"
    assert call("MASK_RIGHT", s("Abcd12"), i(2)) == "Abcdnn"
    assert call("REGEXP_REPLACE", s("foo bar"), s("(o+)"), s("[$1]")) == "f[oo] bar"
    assert call("REGEXP_EXTRACT", s("a(\\d+)"), s("xa12y"), i(1)) == "12"
    assert call("INSTR", s("CORPORATE FLOOR"), s("OR")) == 2
    assert call("INSTR", s("CORPORATE FLOOR"), s("OR"), i(3)) == 5
    assert call("INSTR", s("CORPORATE FLOOR"), s("OR"), i(-3), i(2)) == 2
    assert call("REPLACE", s("aXbX"), s("X"), s("-")) == "a-b-"


def test_encodings(call):
    assert call("TO_BYTES", s("21"), s("hex")) == b"!"
    assert call("FROM_BYTES", (BY, b"\x1a\xb2"), s("hex")) == "1AB2"
    assert call("FROM_BYTES", (BY, b"!"), s("base64")) == "IQ=="
    assert call("ENCODE", s("IQ=="), s("base64"), s("utf8")) == "!"
    assert call("INT_FROM_BYTES", (BY, (2021).to_bytes(4, "big"))) == 2021
    assert call("INT_FROM_BYTES", (BY, (2021).to_bytes(4, "little")), s("LITTLE_ENDIAN")) == 2021
