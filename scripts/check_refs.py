#!/usr/bin/env python3
"""Check that the references in the repository resolve (issue #12).

Scanned: every *.md file of the repository, and the comments (doc comments
included) of its *.rs, *.cu, *.cuh, *.c, *.h, *.sh, *.py, *.f90 and *.toml
files, Makefiles and extension-less shell scripts (`#!...sh` first line).
"Of the repository" means what `git ls-files --cached --others
--exclude-standard` lists: tracked files plus new files that are not ignored.

Rules:
  1. A relative Markdown link `[text](path)`, `[text](path#anchor)`,
     `![alt](path)` or `[label]: path` (in Markdown outside code blocks and
     code spans; in comments only when the target looks like a file) must
     name a file or folder of the repository, resolved against the folder of
     the file that holds it (a leading `/` means the repository root, as on
     GitHub). http(s), mailto and other URL schemes are not checked. With an
     anchor on a Markdown target, the anchor must be one of the target's
     headings (GitHub's slug rules: lower case, punctuation other than `-`
     and `_` dropped, spaces to `-`, `-1`, `-2`, ... for repeats) or an
     explicit `<a name=...>`/`id=...`.
  2. A file mention, in code or plain text, must exist: a token that starts
     with one of the repository's top-level folder names followed by `/`
     (`src/sampler/engine.rs`, `src/sampler/`), or that contains a `/`
     and ends in a known extension (`../BENCHMARKS.md`).
     It is resolved against the repository root, then the file's own folder.
     A `*` is a glob that must match something; `{a,b}` is expanded.
  3. The project's old design brief is not in the repository: any mention of
     its file name is an error.
  Tokens on the short allow-list below (tool outputs, placeholders, the
  external data folder) are not checked.

Exit status 0 when every reference resolves; 1 with one line per broken
reference, `FILE:LINE: message`, otherwise. `--self-test` builds a small tree
with one good and several bad references and checks that each is reported.
"""

import fnmatch
import io
import os
import itertools
import re
import subprocess
import sys
import tempfile
import tokenize

# The file name of rule 3, spelled so that this script does not mention it.
FORBIDDEN = "DESIGN" + ".md"

# Extensions that make a token with a `/` a file mention (rule 2).
KNOWN_EXT = (
    "rs", "md", "cu", "cuh", "c", "h", "f90", "py", "sh", "toml", "lock",
    "json", "yml", "yaml", "txt", "npy", "npz", "png", "fits", "csv",
    "safetensors", "pt", "pc", "mod",
)

# Comment syntax per scanned source extension (Makefiles and extension-less
# shell scripts are recognised by name and first line, in `kind_of`).
SLASH_COMMENTS = {"rs", "cu", "cuh", "c", "h"}
HASH_COMMENTS = {"sh", "toml"}
BANG_COMMENTS = {"f90"}

# Allow-list: references that are intentionally not in the repository.
# Each entry is a regular expression matched against the whole token.
ALLOW = [
    # build outputs: cargo's target/, the GPU bundle that bench/gpu_prepare.sh
    # writes, the C examples' build folder (c_examples/Makefile)
    r"(\./)?target(/.*)?",
    r"gpu-bin(/.*)?",
    r"c_examples/build(/.*)?",
    # what `lensdiff demo` and the benchmarks write
    r"lensdiff-demo(/.*)?",
    # the external data folder documented in README.md (COSMOS, kappaTNG),
    # which users download themselves, and its files named relative to it
    # (`--data DIR` holds cosmos/std1.fits, ktng/...)
    r"\.\./shared/data(/.*)?",
    r"(cosmos|ktng)/.*",
    # placeholders: environment variables ($OUT/...), <site-packages>/...,
    # an upper-case first component (PREFIX/lib/..., DIR/...)
    r".*[$<>].*",
    r"[A-Z][A-Z0-9_]*/.*",
]
ALLOW_RE = [re.compile(p) for p in ALLOW]

URL_RE = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s)>\]`'\"]*|\bwww\.[^\s)>\]`'\"]*")
# Candidate path tokens: runs of path characters.
TOKEN_RE = re.compile(r"[A-Za-z0-9_.\-/*{},$<>~+@]+")
LINK_RE = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*(<[^>]*>|[^)\s]*)(?:\s+\"[^\"]*\")?\s*\)")
REFDEF_RE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*(<[^>]*>|\S+)")
SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
FENCE_RE = re.compile(r"^\s{0,3}(```+|~~~+)")
HEADING_RE = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ID_RE = re.compile(r"<a\s+[^>]*(?:name|id)\s*=\s*[\"']([^\"']+)[\"']", re.I)
CODE_SPAN_RE = re.compile(r"(`+)(.+?)\1")


class Repo:
    def __init__(self, root, files):
        self.root = root
        self.files = set(files)
        self.dirs = {""}
        for f in self.files:
            parts = f.split("/")
            for i in range(1, len(parts)):
                self.dirs.add("/".join(parts[:i]))
        self.top_dirs = {f.split("/")[0] for f in self.files if "/" in f}
        self._anchors = {}

    def exists(self, rel):
        rel = rel.rstrip("/")
        return rel in self.files or rel in self.dirs

    def glob(self, pattern):
        pattern = pattern.rstrip("/")
        return any(fnmatch.fnmatchcase(p, pattern) for p in self.files | self.dirs)

    def anchors(self, rel):
        if rel not in self._anchors:
            with open(os.path.join(self.root, rel), encoding="utf-8", errors="replace") as fh:
                self._anchors[rel] = markdown_anchors(fh.read())
        return self._anchors[rel]


def normalise(path):
    """Collapse `.` and `..` in a `/`-separated relative path; None if it leaves the root."""
    out = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                return None
            out.pop()
        else:
            out.append(part)
    return "/".join(out)


def github_slug(text):
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def fence_states(lines):
    """'fence', 'code' or 'prose' for each Markdown line (``` and ~~~ fences)."""
    in_fence = None
    for line in lines:
        m = FENCE_RE.match(line)
        if m:
            mark = m.group(1)[0]
            if in_fence is None:
                in_fence = mark
            elif mark == in_fence:
                in_fence = None
            yield "fence"
        else:
            yield "code" if in_fence else "prose"


def markdown_anchors(text):
    anchors, seen, prev = set(), {}, ""
    lines = text.splitlines()
    for line, state in zip(lines, fence_states(lines)):
        para, prev = prev, line
        if state != "prose":
            continue
        anchors.update(HTML_ID_RE.findall(line))
        h = HEADING_RE.match(line)
        title = h.group(2) if h else None
        if title is None and re.match(r"^\s{0,3}(=+|-+)\s*$", line) and para.strip() \
                and not para.lstrip().startswith(("|", "-", "*", "#", ">")):
            title = para.strip()  # setext heading: the line above, underlined
        if title is not None:
            slug = github_slug(title)
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else "%s-%d" % (slug, n))
    return anchors


def brace_expand(tok):
    m = re.search(r"\{([^{}]*)\}", tok)
    if not m:
        return [tok]
    out = []
    for alt in m.group(1).split(","):
        out.extend(brace_expand(tok[: m.start()] + alt + tok[m.end():]))
    return out


def kind_of(root, path):
    """How comments are written in `path`: md, slash, hash, bang, py, or None (not scanned)."""
    name = os.path.basename(path)
    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    if ext == "md":
        return "md"
    if ext == "py":
        return "py"
    if ext in SLASH_COMMENTS:
        return "slash"
    if ext in HASH_COMMENTS or name == "Makefile":
        return "hash"
    if ext in BANG_COMMENTS:
        return "bang"
    if not ext:
        try:
            with open(os.path.join(root, path), "rb") as fh:
                first = fh.readline(200)
        except OSError:
            return None
        if first.startswith(b"#!") and first.rstrip().endswith(b"sh"):
            return "hash"
    return None


STRING_RE = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'')


def python_comments(text):
    """Comments and docstring-like strings (a string that is a statement of its own)."""
    out = []
    significant = None  # the previous token that is not a comment or NL
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return [(no, line[line.index("#") + 1:]) for no, line in enumerate(text.splitlines(), 1) if "#" in line]
    for i, t in enumerate(toks):
        if t.type == tokenize.COMMENT:
            if not (t.start[0] == 1 and t.string.startswith("#!")):
                out.append((t.start[0], t.string[1:]))
            continue
        if t.type == tokenize.STRING and (significant is None or significant.type in (
                tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING)):
            nxt = next((u for u in toks[i + 1:] if u.type not in (tokenize.COMMENT, tokenize.NL)), None)
            if nxt is None or nxt.type in (tokenize.NEWLINE, tokenize.ENDMARKER):
                for k, line in enumerate(t.string.splitlines()):
                    out.append((t.start[0] + k, line))
        if t.type != tokenize.NL:
            significant = t
    return out


def comment_lines(text, kind):
    """(line number, comment text) for every comment in a source file."""
    if kind == "md":
        return list(enumerate(text.splitlines(), 1))
    if kind == "py":
        return python_comments(text)
    out = []
    if kind in ("hash", "bang"):
        mark = re.compile(r"(?:^|(?<=\s))#") if kind == "hash" else re.compile("!")
        for no, line in enumerate(text.splitlines(), 1):
            if no == 1 and line.startswith("#!"):
                continue
            code = STRING_RE.sub('""', line)
            m = mark.search(code)
            if m:
                out.append((no, code[m.end():]))
        return out
    # C-like: // line comments and /* block comments */ (string and char literals skipped)
    in_block = False
    for no, line in enumerate(text.splitlines(), 1):
        code = re.sub(r"'(?:\\.|[^'\\])'", "' '", line) if not in_block else line
        code = re.sub(r'"(?:\\.|[^"\\])*"', '""', code)
        pieces, i = [], 0
        while i < len(code):
            if in_block:
                j = code.find("*/", i)
                if j < 0:
                    pieces.append(code[i:])
                    break
                pieces.append(code[i:j])
                in_block, i = False, j + 2
            else:
                j, k = code.find("//", i), code.find("/*", i)
                if j >= 0 and (k < 0 or j < k):
                    pieces.append(code[j + 2:])
                    break
                if k < 0:
                    break
                in_block, i = True, k + 2
        if pieces:
            out.append((no, " ".join(pieces)))
    return out


def allowed(tok):
    return any(r.fullmatch(tok) for r in ALLOW_RE)


def looks_like_path(tok, repo):
    if "/" not in tok:
        return False
    bare = tok[2:] if tok.startswith("./") else tok
    first = bare.split("/")[0]
    if first in repo.top_dirs:
        return True
    if bare.startswith("../"):
        return True
    ext = bare.rsplit(".", 1)[-1] if "." in bare.rsplit("/", 1)[-1] else ""
    return ext in KNOWN_EXT


def resolve_mention(tok, here, repo):
    """True when `tok` names something in the repository."""
    candidates = []
    for t in brace_expand(tok):
        bases = [here] if t.startswith("../") or t.startswith("./") else ["", here]
        for base in bases:
            rel = normalise(base + "/" + t if base else t)
            if rel is not None:
                candidates.append(rel + ("/" if t.endswith("/") else ""))
        if not any(repo.glob(c) if "*" in c else repo.exists(c) for c in candidates):
            return False
        candidates = []
    return True


def split_token(raw):
    """Split a run of path characters at commas outside braces; trim punctuation."""
    parts, depth, cur = [], 0, ""
    for ch in raw:
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth <= 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out = []
    for tok in parts:
        tok = tok.strip(".,;:")
        for close, open_ in ((")", "("), ("]", "["), ("}", "{")):
            while tok.endswith(close) and tok.count(close) > tok.count(open_):
                tok = tok[:-1].rstrip(".,;:")
            while tok.startswith(open_) and tok.count(open_) > tok.count(close):
                tok = tok[1:]
        if tok:
            out.append(tok)
    return out


def check_link(target, here, path, no, repo, errors, in_comment):
    target = target.strip("<>")
    if not target or SCHEME_RE.match(target):
        return
    file_part, _, anchor = target.partition("#")
    if in_comment and not (("/" in file_part or "." in file_part) and "::" not in file_part):
        return  # rustdoc intra-doc links such as [x](crate::y)
    if file_part == "":
        rel = path
    else:
        base = "" if file_part.startswith("/") else here
        rel = normalise(base + "/" + file_part)
        if rel is None or not repo.exists(rel):
            if not allowed(file_part):
                errors.append("%s:%d: link target %s does not exist" % (path, no, target))
            return
    if anchor and rel.endswith(".md") and rel in repo.files:
        if anchor not in repo.anchors(rel):
            errors.append("%s:%d: link %s: no heading #%s in %s" % (path, no, target, anchor, rel))


def check_file(path, kind, repo, errors):
    with open(os.path.join(repo.root, path), encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    here = os.path.dirname(path)
    for no, line in enumerate(text.splitlines(), 1):
        if FORBIDDEN.lower() in line.lower():
            errors.append("%s:%d: %s is not in the repository; cite the doc in docs/ that holds the convention"
                          % (path, no, FORBIDDEN))
    lines = list(comment_lines(text, kind))
    states = fence_states(l for _, l in lines) if kind == "md" else itertools.repeat("prose")
    for (no, line), state in zip(lines, states):
        if state == "fence":
            continue
        if state == "prose":
            prose = CODE_SPAN_RE.sub(lambda m: " " * len(m.group(0)), line) if kind == "md" else line
            for m in LINK_RE.finditer(prose):
                check_link(m.group(1), here, path, no, repo, errors, kind != "md")
            m = REFDEF_RE.match(prose) if kind == "md" else None
            if m:
                check_link(m.group(1), here, path, no, repo, errors, False)
        # Mentions: everywhere, URLs and link targets removed (checked above).
        scan = URL_RE.sub(" ", line)
        scan = re.sub(r"\]\([^)]*\)", "] ", scan)
        for tok in (t for raw in TOKEN_RE.findall(scan) for t in split_token(raw)):
            if FORBIDDEN.lower() in tok.lower() or not looks_like_path(tok, repo):
                continue
            if tok.startswith("/") or tok.startswith("~") or allowed(tok):
                continue
            if not resolve_mention(tok, here, repo):
                errors.append("%s:%d: %s does not exist in the repository" % (path, no, tok))


def repo_files(root):
    try:
        out = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=root, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        ).stdout.decode("utf-8").split("\0")
    except (OSError, subprocess.CalledProcessError):
        # not a git checkout (a source tarball): every file but build outputs
        out = []
        for d, dirs, names in os.walk(root):
            dirs[:] = [x for x in dirs if x not in (".git", "target", "gpu-bin", "build", "out")]
            out += [os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/") for n in names]
    return sorted(f for f in out if f and os.path.isfile(os.path.join(root, f)))


def check_repo(root):
    files = repo_files(root)
    repo = Repo(root, files)
    errors = []
    for f in files:
        kind = kind_of(root, f)
        if kind:
            check_file(f, kind, repo, errors)
    return errors


def self_test():
    # The good references (none may be reported) ...
    tree = {
        "docs/guide.md": "# Guide\n\n## The engine's batch loop\n\nSee [the loop](#the-engines-batch-loop).\n"
                         "\nSetext heading\n--------------\n",
        "src/lib.rs": "//! Conventions: [guide](../docs/guide.md#the-engines-batch-loop), `docs/guide.md`,\n"
                      "//! [setext](../docs/guide.md#setext-heading), kernels/*.cu, `src/{lib,main}.rs`.\n"
                      "//! Built into `target/release/`; data in ../shared/data/cosmos; `$OUT/x.md`.\n"
                      "fn main() { let p = \"src/not_a_comment.rs\"; } // the `src/` folder\n",
        "src/main.rs": "fn main() {}\n",
        "tools/t.py": '"""Docstring: see docs/guide.md."""\nHELP = "src/in_code.py"  # and src/lib.rs\n',
        # ... and the bad ones, each listed in `expected`
        "README.md": "\n".join([
            "# Top",
            "[good](docs/guide.md) and [good anchor](docs/guide.md#guide), `src/lib.rs`, src/",
            "[missing](docs/missing.md)",
            "[bad anchor](docs/guide.md#no-such-heading) and [here](#nowhere)",
            "see " + FORBIDDEN,
            "the integrators live in `src/sampler/device/`",
            "```", "src/old.rs       moved away", "```",
        ]) + "\n",
        "kernels/a.cu": "// twin of src/gone.rs\n__global__ void k() { const char *s = \"src/x.rs\"; }\n"
                        "/* block comment: kernels/*.cuh,\n   tools/old.py */\n",
        "tools/u.py": "# uses kernels/b.cu\n",
    }
    expected = [
        "README.md:3: link target docs/missing.md does not exist",
        "README.md:4: link docs/guide.md#no-such-heading: no heading #no-such-heading in docs/guide.md",
        "README.md:4: link #nowhere: no heading #nowhere in README.md",
        "README.md:5: " + FORBIDDEN,
        "README.md:6: src/sampler/device/ does not exist",
        "README.md:8: src/old.rs does not exist",
        "kernels/a.cu:1: src/gone.rs does not exist",
        "kernels/a.cu:3: kernels/*.cuh does not exist",
        "kernels/a.cu:4: tools/old.py does not exist",
        "tools/u.py:1: kernels/b.cu does not exist",
    ]
    with tempfile.TemporaryDirectory() as d:
        for rel, body in tree.items():
            os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(d, rel), "w", encoding="utf-8") as fh:
                fh.write(body)
        try:  # a git checkout, as the real run sees; without git the tree walk is used
            subprocess.run(["git", "init", "-q", d], check=True, stdout=subprocess.DEVNULL)
        except (OSError, subprocess.CalledProcessError):
            pass
        errors = check_repo(d)
    ok = True
    for e in expected:
        if not any(err.startswith(e) for err in errors):
            print("self-test: not reported: " + e)
            ok = False
    for err in errors:
        if not any(err.startswith(e) for e in expected):
            print("self-test: false alarm: " + err)
            ok = False
    print("self-test: %s (%d expected errors, %d reported)" % ("ok" if ok else "FAILED", len(expected), len(errors)))
    return 0 if ok else 1


def main():
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    if sys.argv[1:]:
        print("usage: check_refs.py [--self-test]", file=sys.stderr)
        return 2
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    errors = check_repo(root)
    for e in errors:
        print(e)
    sys.stdout.flush()
    if errors:
        print("check_refs: %d broken reference(s)" % len(errors), file=sys.stderr)
        return 1
    print("check_refs: every reference resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
