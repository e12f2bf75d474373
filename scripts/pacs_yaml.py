"""A small YAML subset reader (python3 stdlib only) for our rule, test and config files.

Supports what those files use: block mappings and sequences, `|`/`>` block scalars,
flow mappings/sequences ({a: b}, [a, b]), single/double-quoted and plain scalars,
comments. Scalars stay strings (except flow/block collections). Anything else —
anchors, tags, multi-document streams — raises YamlError with the line number, so a
lint never silently checks a misread file.
"""
import re


class YamlError(Exception):
    pass


def _strip_comment(s):
    out, q, i = [], None, 0
    while i < len(s):
        c = s[i]
        if q:
            if q == "'" and c == "'":
                if i + 1 < len(s) and s[i + 1] == "'":
                    out.append("''")
                    i += 2
                    continue
                q = None
            elif q == '"' and c == "\\":
                out.append(s[i:i + 2])
                i += 2
                continue
            elif q == '"' and c == '"':
                q = None
        else:
            if c in "'\"" and (i == 0 or s[i - 1] in " [{,:-"):
                q = c
            elif c == "#" and (i == 0 or s[i - 1] in " \t"):
                break
        out.append(c)
        i += 1
    return "".join(out).rstrip()


def _unquote(s, lineno):
    if s.startswith("'"):
        if not s.endswith("'") or len(s) < 2:
            raise YamlError(f"line {lineno}: unterminated single-quoted string")
        return s[1:-1].replace("''", "'")
    if s.startswith('"'):
        if not s.endswith('"') or len(s) < 2:
            raise YamlError(f"line {lineno}: unterminated double-quoted string")
        body = s[1:-1]
        esc = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "/": "/"}
        return re.sub(r'\\(.)', lambda m: esc.get(m.group(1), "\\" + m.group(1)), body)
    return s


def _find_colon(s):
    """Index of the mapping ':' (followed by space/end) outside quotes/brackets, or -1."""
    q, depth = None, 0
    for i, c in enumerate(s):
        if q:
            if c == q:
                q = None
            continue
        if c in "'\"" and (i == 0 or s[i - 1] in " [{,:"):
            q = c
        elif c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
        elif c == ":" and depth == 0 and (i + 1 == len(s) or s[i + 1] in " \t"):
            return i
    return -1


class _Flow:
    def __init__(self, s, lineno):
        self.s, self.i, self.lineno = s, 0, lineno

    def err(self, msg):
        raise YamlError(f"line {self.lineno}: {msg} in flow collection {self.s!r}")

    def ws(self):
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def value(self):
        self.ws()
        if self.i >= len(self.s):
            self.err("unexpected end")
        c = self.s[self.i]
        if c == "{":
            return self.mapping()
        if c == "[":
            return self.sequence()
        if c in "'\"":
            j = self.i + 1
            while j < len(self.s):
                if self.s[j] == c:
                    if c == "'" and j + 1 < len(self.s) and self.s[j + 1] == "'":
                        j += 2
                        continue
                    break
                if c == '"' and self.s[j] == "\\":
                    j += 1
                j += 1
            tok = self.s[self.i:j + 1]
            self.i = j + 1
            return _unquote(tok, self.lineno)
        j = self.i
        while j < len(self.s) and self.s[j] not in ",]}" and not (
                self.s[j] == ":" and (j + 1 == len(self.s) or self.s[j + 1] in " ")):
            j += 1
        tok = self.s[self.i:j].strip()
        self.i = j
        return tok

    def mapping(self):
        self.i += 1
        out = {}
        while True:
            self.ws()
            if self.s[self.i:self.i + 1] == "}":
                self.i += 1
                return out
            k = self.value()
            self.ws()
            if self.s[self.i:self.i + 1] != ":":
                self.err("expected ':'")
            self.i += 1
            out[k] = self.value()
            self.ws()
            if self.s[self.i:self.i + 1] == ",":
                self.i += 1
            elif self.s[self.i:self.i + 1] != "}":
                self.err("expected ',' or '}'")

    def sequence(self):
        self.i += 1
        out = []
        while True:
            self.ws()
            if self.s[self.i:self.i + 1] == "]":
                self.i += 1
                return out
            out.append(self.value())
            self.ws()
            if self.s[self.i:self.i + 1] == ",":
                self.i += 1
            elif self.s[self.i:self.i + 1] != "]":
                self.err("expected ',' or ']'")


def _scalar(s, lineno):
    s = s.strip()
    if s.startswith(("{", "[")):
        f = _Flow(s, lineno)
        v = f.value()
        f.ws()
        if f.i != len(s):
            raise YamlError(f"line {lineno}: trailing text after flow collection")
        return v
    if s.startswith(("&", "*", "!")):
        raise YamlError(f"line {lineno}: anchors, aliases and tags are not supported")
    return _unquote(s, lineno)


class _Parser:
    def __init__(self, text):
        self.raw = text.split("\n")
        self.lines = [_strip_comment(l) if not l.lstrip().startswith("#") else "" for l in self.raw]
        self.i = 0

    def peek(self):
        while self.i < len(self.lines):
            l = self.lines[self.i]
            if l.strip() == "" or l.strip() == "---":
                if l.strip() == "---" and self.i > 0 and any(x.strip() for x in self.lines[:self.i]):
                    raise YamlError(f"line {self.i + 1}: multi-document files are not supported")
                self.i += 1
                continue
            if "\t" in l[: len(l) - len(l.lstrip())]:
                raise YamlError(f"line {self.i + 1}: tab in indentation")
            return len(l) - len(l.lstrip()), l.strip()
        return None

    def node(self, min_indent):
        p = self.peek()
        if p is None or p[0] < min_indent:
            return None
        ind, content = p
        if content == "-" or content.startswith("- "):
            return self.sequence(ind)
        if not content.startswith(("{", "[", "'", '"')) and _find_colon(content) >= 0:
            return self.mapping(ind)
        self.i += 1
        return _scalar(content, self.i)

    def block_scalar(self, ind, style):
        out, block_ind = [], None
        while self.i < len(self.raw):
            l = self.raw[self.i]
            if l.strip() == "":
                out.append("")
                self.i += 1
                continue
            li = len(l) - len(l.lstrip())
            if li <= ind:
                break
            if block_ind is None:
                block_ind = li
            out.append(l[block_ind:])
            self.i += 1
        while out and out[-1] == "":
            out.pop()
        if style.startswith(">"):
            return " ".join(x.strip() for x in out) + ("" if style.endswith("-") else "\n")
        return "\n".join(out) + ("" if style.endswith("-") else "\n")

    def mapping(self, ind):
        out = {}
        while True:
            p = self.peek()
            if p is None or p[0] < ind:
                return out
            if p[0] > ind:
                raise YamlError(f"line {self.i + 1}: unexpected indentation")
            content = p[1]
            if content == "-" or content.startswith("- "):
                return out
            c = _find_colon(content)
            if c < 0:
                raise YamlError(f"line {self.i + 1}: expected 'key: value', got {content!r}")
            key = _unquote(content[:c].strip(), self.i + 1)
            rest = content[c + 1:].strip()
            if key in out:
                raise YamlError(f"line {self.i + 1}: duplicate key {key!r}")
            self.i += 1
            if rest in ("|", "|-", ">", ">-"):
                out[key] = self.block_scalar(ind, rest)
            elif rest == "":
                nxt = self.peek()
                if nxt and nxt[0] == ind and (nxt[1] == "-" or nxt[1].startswith("- ")):
                    out[key] = self.sequence(ind)
                else:
                    v = self.node(ind + 1)
                    out[key] = v
            else:
                out[key] = _scalar(rest, self.i)

    def sequence(self, ind):
        out = []
        while True:
            p = self.peek()
            if p is None or p[0] < ind:
                return out
            content = p[1]
            if p[0] > ind or not (content == "-" or content.startswith("- ")):
                if p[0] == ind:
                    return out
                raise YamlError(f"line {self.i + 1}: unexpected indentation")
            if content == "-":
                self.i += 1
                out.append(self.node(ind + 1))
                continue
            # Turn "- key: v" into a line indented past the dash and parse it in place.
            l = self.lines[self.i]
            dash = l.index("-")
            self.lines[self.i] = l[:dash] + " " + l[dash + 1:]
            out.append(self.node(ind + 1))


def load(text):
    p = _Parser(text)
    v = p.node(0)
    if p.peek() is not None:
        raise YamlError(f"line {p.i + 1}: unexpected content {p.peek()[1]!r}")
    return v


def load_file(path):
    with open(path, encoding="utf-8") as f:
        try:
            return load(f.read())
        except YamlError as e:
            raise YamlError(f"{path}: {e}") from None
