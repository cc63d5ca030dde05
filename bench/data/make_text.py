"""Writes bench/data/docutils_docstrings.txt: ~20 KB of English prose for `rmlx perplexity`.

The text is the docstrings of the Docutils package (placed in the public domain by its
authors), taken in a fixed order so the file is reproducible: modules sorted by name, then
module, class and function docstrings in source order, paragraphs longer than 200 characters
only (prose, not signatures), stopped at 20,000 characters.
"""
import ast
import pathlib
import sys

import docutils

root = pathlib.Path(docutils.__file__).parent
out, size = [], 0
for path in sorted(root.rglob("*.py")):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = [tree] + [n for n in ast.walk(tree) if isinstance(n, (ast.ClassDef, ast.FunctionDef))]
    for node in nodes:
        doc = ast.get_docstring(node)
        if not doc:
            continue
        for para in doc.split("\n\n"):
            para = " ".join(para.split())
            if len(para) < 200 or para.startswith((":", "..", ">>>")) or "::" in para:
                continue
            out.append(para)
            size += len(para) + 2
            if size >= 20000:
                break
        if size >= 20000:
            break
    if size >= 20000:
        break
dest = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bench/data/docutils_docstrings.txt")
dest.write_text("\n\n".join(out) + "\n", encoding="utf-8")
print(f"{dest}: {dest.stat().st_size} bytes, {len(out)} paragraphs (docutils {docutils.__version__})")
