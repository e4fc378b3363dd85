"""MkDocs hooks (mkdocs.yml ``hooks:``): the repository's README becomes the site's home page and
BENCHMARKS.md a page of its own, with their links into ``docs/`` (and the docs' links back to
``../BENCHMARKS.md``) rewritten to the site's layout, so ``mkdocs build --strict`` checks them all.
Local, offline, no plugin."""
import os
import re

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.abspath(__file__))
TOP_PAGES = {"index.md": "README.md", "BENCHMARKS.md": "BENCHMARKS.md"}


def on_files(files, config):
    for uri, name in TOP_PAGES.items():
        with open(os.path.join(ROOT, name), encoding="utf-8") as fh:
            files.append(File.generated(config, uri, content=fh.read()))
    return files


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri in TOP_PAGES:            # README / BENCHMARKS: links into docs/ drop the prefix
        markdown = re.sub(r"\]\(docs/", "](", markdown)
        markdown = markdown.replace("](BENCHMARKS.md", "](BENCHMARKS.md").replace("](README.md", "](index.md")
    else:                                         # docs/*.md: ../BENCHMARKS.md is a site page now
        markdown = markdown.replace("](../BENCHMARKS.md", "](BENCHMARKS.md").replace("](../README.md", "](index.md")
    return markdown
