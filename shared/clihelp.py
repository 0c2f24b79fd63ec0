"""Help text as a person reads it: argparse descriptions and epilogs wrapped at words, lists kept."""

from __future__ import annotations

import argparse
import re
import textwrap


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs wrapped at word boundaries to the terminal's width: paragraphs are filled,
    indented lines (``  NAME  meaning``) keep their indent and continue under their meaning."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for para in text.split("\n\n"):
            lines = para.split("\n")
            if all(not ln.startswith(" ") for ln in lines[1:]) and not para.startswith(" ") \
                    and not lines[0].endswith(":"):
                out.append(textwrap.fill(" ".join(lines), width, initial_indent=indent, subsequent_indent=indent,
                                         break_long_words=False, break_on_hyphens=False))
                continue
            block = []
            for ln in lines:
                m = re.match(r"^(\s+\S+(?: / \S+)*\s+)(.*)$", ln)
                hang = " " * len(m.group(1)) if m and len(m.group(1)) < width // 2 else "      "
                block.append(textwrap.fill(ln, width, initial_indent=indent, subsequent_indent=indent + hang,
                                           break_long_words=False, break_on_hyphens=False) if ln else ln)
            out.append("\n".join(block))
        return "\n\n".join(out)
