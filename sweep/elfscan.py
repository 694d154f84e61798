"""What shipped ELF files need from an execute node: symbol versions and shared libraries.

Read from the files themselves (section headers, .gnu.version_r, .dynamic), so the answer does
not depend on binutils being installed where `sweep pack` runs.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_ELF_MAGIC = b"\x7fELF"
_SHT_DYNAMIC = 6
_SHT_GNU_VERNEED = 0x6FFFFFFE
_DT_NEEDED = 1
_DT_SONAME = 14
# GLIBC_2.35, GLIBCXX_3.4.30, CXXABI_1.3.13 (GLIBC_PRIVATE and GLIBC_ABI_DT_RELR are not versions)
_VERSIONED = re.compile(r"(GLIBC|GLIBCXX|CXXABI)_(\d+(?:\.\d+)+)")

Version = tuple[int, ...]


@dataclass(frozen=True)
class ElfNeeds:
    """The system interface one ELF file links against."""

    versions: dict[str, Version]  # newest needed version per family: {"GLIBC": (2, 34), ...}
    needed: tuple[str, ...]  # DT_NEEDED sonames
    soname: str | None


@dataclass
class SystemNeeds:
    """What a whole tree of ELF files needs, merged."""

    versions: dict[str, Version] = field(default_factory=dict)
    needed: set[str] = field(default_factory=set)
    provided: set[str] = field(default_factory=set)  # sonames and file names shipped in the tree
    elf_files: int = 0

    def add(self, path: Path, needs: ElfNeeds) -> None:
        self.elf_files += 1
        for family, version in needs.versions.items():
            self.versions[family] = max(version, self.versions.get(family, ()))
        self.needed.update(needs.needed)
        self.provided.add(path.name)
        if needs.soname:
            self.provided.add(needs.soname)

    def version(self, family: str) -> str | None:
        found = self.versions.get(family)
        return ".".join(map(str, found)) if found else None

    def system_libraries(self) -> list[str]:
        """Shared libraries the node must provide (needed, but not shipped)."""
        return sorted(self.needed - self.provided)


def scan_tree(paths: Iterable[Path]) -> SystemNeeds:
    merged = SystemNeeds()
    for path in paths:
        needs = read_elf_needs(path)
        if needs is not None:
            merged.add(path, needs)
    return merged


def read_elf_needs(path: Path) -> ElfNeeds | None:
    """The needs of one file, or None when it is not an ELF file we can read."""
    with path.open("rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != _ELF_MAGIC or ident[4] not in (1, 2) or ident[5] not in (1, 2):
            return None
        try:
            return _ElfReader(f, is64=ident[4] == 2, little=ident[5] == 1).needs()
        except (struct.error, IndexError, ValueError):
            return None  # truncated or unusual: nothing we can claim about it


class _ElfReader:
    def __init__(self, f: BinaryIO, *, is64: bool, little: bool) -> None:
        self.f = f
        self.is64 = is64
        self.end = "<" if little else ">"
        self.sections = self._section_headers()
        self._strtabs: dict[int, bytes] = {}

    def needs(self) -> ElfNeeds:
        versions: dict[str, Version] = {}
        needed: list[str] = []
        soname = None
        for sh_type, offset, size, link, entsize in self.sections:
            if sh_type == _SHT_GNU_VERNEED:
                for name in self._verneed_names(offset, size, link):
                    match = _VERSIONED.fullmatch(name)
                    if match:
                        family, version = match[1], tuple(int(p) for p in match[2].split("."))
                        versions[family] = max(version, versions.get(family, ()))
            elif sh_type == _SHT_DYNAMIC:
                for tag, value in self._dynamic_entries(offset, size, entsize):
                    if tag == _DT_NEEDED:
                        needed.append(self._string(link, value))
                    elif tag == _DT_SONAME:
                        soname = self._string(link, value)
        return ElfNeeds(versions=versions, needed=tuple(needed), soname=soname)

    def _read(self, offset: int, size: int) -> bytes:
        self.f.seek(offset)
        data = self.f.read(size)
        if len(data) != size:
            raise ValueError("truncated ELF file")
        return data

    def _section_headers(self) -> list[tuple[int, int, int, int, int]]:
        """(type, offset, size, link, entsize) of every section."""
        if self.is64:
            shoff, shentsize, shnum = (
                self._unpack("Q", 0x28),
                self._unpack("H", 0x3A),
                self._unpack("H", 0x3C),
            )
            layout = "IIQQQQIIQQ"
        else:
            shoff, shentsize, shnum = (
                self._unpack("I", 0x20),
                self._unpack("H", 0x2E),
                self._unpack("H", 0x30),
            )
            layout = "IIIIIIIIII"
        table = self._read(shoff, shentsize * shnum)
        headers = []
        for i in range(shnum):
            _, sh_type, _, _, offset, size, link, _, _, entsize = struct.unpack_from(
                self.end + layout, table, i * shentsize
            )
            headers.append((sh_type, offset, size, link, entsize))
        return headers

    def _unpack(self, fmt: str, offset: int) -> int:
        data = self._read(offset, struct.calcsize(fmt))
        return int(struct.unpack(self.end + fmt, data)[0])

    def _string(self, section_index: int, offset: int) -> str:
        data = self._strtabs.get(section_index)
        if data is None:
            _, sec_offset, sec_size, _, _ = self.sections[section_index]
            data = self._strtabs[section_index] = self._read(sec_offset, sec_size)
        end = data.index(b"\0", offset)
        return data[offset:end].decode("utf-8", "replace")

    def _verneed_names(self, offset: int, size: int, strtab: int) -> list[str]:
        data = self._read(offset, size)
        names = []
        pos = 0
        while True:
            _, count, _, aux, next_need = struct.unpack_from(self.end + "HHIII", data, pos)
            aux_pos = pos + aux
            for _ in range(count):
                _, _, _, name, next_aux = struct.unpack_from(self.end + "IHHII", data, aux_pos)
                names.append(self._string(strtab, name))
                aux_pos += next_aux
            if not next_need:
                return names
            pos += next_need

    def _dynamic_entries(self, offset: int, size: int, entsize: int) -> list[tuple[int, int]]:
        data = self._read(offset, size)
        fmt = self.end + ("qQ" if self.is64 else "iI")
        entsize = entsize or struct.calcsize(fmt)
        entries = []
        for pos in range(0, size - entsize + 1, entsize):
            tag, value = struct.unpack_from(fmt, data, pos)
            if tag == 0:  # DT_NULL ends the table
                break
            entries.append((tag, value))
        return entries
