"""Env-flag extraction: every idiom the lab uses is found with its exact name, line, default, idiom and default_on;
every look-alike (comments, strings, other dicts, shadowed names) is not."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings, strategies as st

from patchq.flags import DYNAMIC, is_default_off, language_of, read_flag_reads, reads_in_lines
from patchq.flags.dispatch import LANGUAGES, reader
from patchq.model import FlagIdiom, FlagRead

Idiom = FlagIdiom


def source(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def reads(path: str, text: str) -> list[FlagRead]:
    return read_flag_reads(path, source(text))


def only(path: str, text: str) -> FlagRead:
    found = reads(path, text)
    assert len(found) == 1, found
    return found[0]


def named(found: list[FlagRead], name: str) -> FlagRead:
    matches = [r for r in found if r.name == name]
    assert len(matches) == 1, (name, found)
    return matches[0]


def summary(read: FlagRead) -> tuple:
    return read.name, read.line, read.default, read.idiom, read.compared_to, read.default_on


# ---------------------------------------------------------------------------------------------------- languages

@pytest.mark.parametrize("path, language", [
    ("vllm/model_executor/models/minimax_m2.py", "python"), ("stubs/x.pyi", "python"),
    ("csrc/a.c", "c"), ("a.cc", "c"), ("a.cpp", "c"), ("a.cxx", "c"), ("a.h", "c"), ("a.hh", "c"), ("a.hpp", "c"),
    ("kernels/moe.cu", "c"), ("a.cuh", "c"), ("ggml/src/ggml-sycl/x.sycl", "c"), ("a.inl", "c"),
    ("run.sh", "shell"), ("a.bash", "shell"), ("a.zsh", "shell"), ("prod.env", "shell"), (".env", "shell"),
    ("CMakeLists.txt", "cmake"), ("cmake/FindSYCL.cmake", "cmake"),
    ("README.md", None), ("Makefile", None), ("setup.cfg", None),
])
def test_language_of_by_path(path: str, language: str | None) -> None:
    assert language_of(path) == language


@pytest.mark.parametrize("first_line, language", [
    ("#!/bin/bash", "shell"), ("#!/bin/sh", "shell"), ("#!/usr/bin/env bash", "shell"),
    ("#!/usr/bin/env -S bash -e", "shell"), ("#!/usr/bin/env python3", "python"), ("hello", None),
])
def test_language_of_extensionless_file_by_shebang(first_line: str, language: str | None) -> None:
    assert language_of("scripts/run-bench", text=first_line + "\necho\n") == language
    assert language_of("scripts/run-bench") is None


def test_unknown_language_has_no_reads() -> None:
    assert read_flag_reads("notes.md", 'os.environ.get("VLLM_X", "0") == "1"\n') == []


@pytest.mark.parametrize("path, language", [
    ("run.sh", "shell"), ("m.py", "python"), ("k.cu", "c"), ("CMakeLists.txt", "cmake"), ("notes.md", None)])
def test_reading_a_file_imports_only_its_own_language_module(path: str, language: str | None) -> None:
    """The dispatcher imports a language's module on first use: a shell-only audit never loads the Python lexer."""
    code = ("import json, sys, patchq.flags as f; f.read_flag_reads(sys.argv[1], 'x = 1\\n'); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('patchq.flags.'))))")
    proc = subprocess.run([sys.executable, "-c", code, path], capture_output=True, text=True, check=True)
    loaded = {name.rsplit(".", 1)[1] for name in json.loads(proc.stdout)}
    assert loaded & set(LANGUAGES) == ({language} if language else set())


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_language_module_offers_the_same_reader(language: str) -> None:
    module = importlib.import_module(f"patchq.flags.{language}")
    assert module.LANGUAGE == language and reader(language) is module.reads
    assert module.reads("empty.txt", "") == []
    with pytest.raises(ValueError, match="no env-read extractor"):
        reader("fortran")


# ---------------------------------------------------------------------------------------------------- Python

PY_HEADER = """\
import os
from os import environ, getenv
import os as _os
"""


@pytest.mark.parametrize("code, expected", [
    ('A = os.environ.get("VLLM_MINIMAX_X", "0") == "1"', ("VLLM_MINIMAX_X", 4, "0", Idiom.EQUALS, "1", False)),
    ('A = os.environ.get("VLLM_ON", "1") == "1"', ("VLLM_ON", 4, "1", Idiom.EQUALS, "1", True)),
    ('A = os.environ.get("VLLM_NE", "1") != "0"', ("VLLM_NE", 4, "1", Idiom.EQUALS, "0", True)),
    ('A = os.getenv("VLLM_X")', ("VLLM_X", 4, None, Idiom.STRING, None, None)),
    ('A = os.getenv("VLLM_X", "1")', ("VLLM_X", 4, "1", Idiom.STRING, None, True)),
    ('A = environ.get("VLLM_X", "0")', ("VLLM_X", 4, "0", Idiom.STRING, None, False)),
    ('A = getenv("VLLM_X")', ("VLLM_X", 4, None, Idiom.STRING, None, None)),
    ('A = _os.environ.get("VLLM_X", "0") == "1"', ("VLLM_X", 4, "0", Idiom.EQUALS, "1", False)),
    ('A = _os.getenv("VLLM_X", "0") == "1"', ("VLLM_X", 4, "0", Idiom.EQUALS, "1", False)),
    ('A = os.environ["VLLM_X"]', ("VLLM_X", 4, None, Idiom.STRING, None, None)),
    ('A = "VLLM_X" in os.environ', ("VLLM_X", 4, None, Idiom.PRESENCE, None, False)),
    ('A = "VLLM_X" not in os.environ', ("VLLM_X", 4, None, Idiom.PRESENCE, None, True)),
    ('A = os.environ.get("VLLM_X") is not None', ("VLLM_X", 4, None, Idiom.PRESENCE, None, False)),
    ('os.environ.setdefault("VLLM_X", "1")', ("VLLM_X", 4, "1", Idiom.SET, None, True)),
    ('A = os.environ.setdefault("VLLM_X", "0") == "1"', ("VLLM_X", 4, "0", Idiom.EQUALS, "1", False)),
    ('os.environ["VLLM_X"] = "1"', ("VLLM_X", 4, "1", Idiom.SET, None, True)),
    ('A = int(os.environ.get("X_MAX_TOKENS", "4"))', ("X_MAX_TOKENS", 4, "4", Idiom.INT, None, None)),
    ('A = int(os.environ.get("X_ENABLE", "0"))', ("X_ENABLE", 4, "0", Idiom.INT, None, False)),
    ('A = int(os.environ.get("X_ENABLE", "1"))', ("X_ENABLE", 4, "1", Idiom.INT, None, True)),
    ('A = int(os.getenv("X_LIMIT", "4")) > 2', ("X_LIMIT", 4, "4", Idiom.INT, "2", True)),
    ('A = float(os.getenv("X_SCALE", "0.5"))', ("X_SCALE", 4, "0.5", Idiom.FLOAT, None, None)),
    ('A = float(os.getenv("X_SCALE", "0"))', ("X_SCALE", 4, "0", Idiom.FLOAT, None, False)),
    ('A = bool(int(os.getenv("VLLM_X", "0")))', ("VLLM_X", 4, "0", Idiom.INT, None, False)),
    ('A = bool(int(os.getenv("VLLM_X", "1")))', ("VLLM_X", 4, "1", Idiom.INT, None, True)),
    ('A = os.environ.get("VLLM_X", "0").lower() in ("1", "true")', ("VLLM_X", 4, "0", Idiom.EQUALS, "1|true", False)),
    ('A = os.environ.get("VLLM_X", "TRUE").strip().lower() in {"1", "true"}',
     ("VLLM_X", 4, "TRUE", Idiom.EQUALS, "1|true", True)),
    ('A = os.getenv("VLLM_X", "false").lower() == "true"', ("VLLM_X", 4, "false", Idiom.EQUALS, "true", False)),
    ('A = os.environ.get("VLLM_X", default="1") == "1"', ("VLLM_X", 4, "1", Idiom.EQUALS, "1", True)),
    ('A = os.getenv(key="VLLM_X")', ("VLLM_X", 4, None, Idiom.STRING, None, None)),
    ('A = int(os.getenv("NUM_SLICES") or "1")', ("NUM_SLICES", 4, "1", Idiom.INT, None, True)),
    ('A = os.environ.get("VLLM_X", 4)', ("VLLM_X", 4, "4", Idiom.STRING, None, None)),
    ('A = os.environ.pop("VLLM_X", "0") == "1"', ("VLLM_X", 4, "0", Idiom.EQUALS, "1", False)),
])
def test_python_read_idioms(code: str, expected: tuple) -> None:
    assert summary(only("m.py", PY_HEADER + code + "\n")) == expected


@pytest.mark.parametrize("code, expected", [
    ('if os.getenv("VLLM_X", "1"):\n    pass', ("VLLM_X", 4, "1", Idiom.TRUTHY, None, True)),
    ('if os.getenv("VLLM_X"):\n    pass', ("VLLM_X", 4, None, Idiom.TRUTHY, None, False)),
    # the lab's intent, not Python's: a "0" default used as a truth value means off
    ('if os.getenv("VLLM_X", "0"):\n    pass', ("VLLM_X", 4, "0", Idiom.TRUTHY, None, False)),
    ('if os.getenv("VLLM_X", "off"):\n    pass', ("VLLM_X", 4, "off", Idiom.TRUTHY, None, False)),
    ('if os.getenv("VLLM_X", "fast"):\n    pass', ("VLLM_X", 4, "fast", Idiom.TRUTHY, None, True)),
    ('if not os.getenv("VLLM_X"):\n    pass', ("VLLM_X", 4, None, Idiom.TRUTHY, None, True)),
    ('x = 1 if os.environ.get("VLLM_X") else 2', ("VLLM_X", 4, None, Idiom.TRUTHY, None, False)),
    ('while os.environ.get("VLLM_X", "1") == "1":\n    break', ("VLLM_X", 4, "1", Idiom.EQUALS, "1", True)),
    ('if flag and os.getenv("VLLM_X", "1"):\n    pass', ("VLLM_X", 4, "1", Idiom.TRUTHY, None, True)),
    ('assert os.getenv("VLLM_X")', ("VLLM_X", 4, None, Idiom.TRUTHY, None, False)),
])
def test_python_truthy_uses(code: str, expected: tuple) -> None:
    assert summary(only("m.py", PY_HEADER + code + "\n")) == expected


def test_python_expression_is_the_consuming_expression() -> None:
    read = only("m.py", PY_HEADER + 'A = os.environ.get("VLLM_MINIMAX_X", "0") == "1"\n')
    assert read.expression == 'os.environ.get("VLLM_MINIMAX_X", "0") == "1"'
    assert (read.path, read.language, read.dynamic, read.removed) == ("m.py", "python", False, False)


def test_python_call_split_over_lines_reports_the_line_of_the_name() -> None:
    read = only("m.py", """
        import os
        USE_X = os.environ.get(
            "VLLM_MINIMAX_SPLIT",
            "0",
        ) == "1"
    """)
    assert summary(read) == ("VLLM_MINIMAX_SPLIT", 3, "0", Idiom.EQUALS, "1", False)
    assert read.expression == 'os.environ.get( "VLLM_MINIMAX_SPLIT", "0", ) == "1"'


def test_python_names_held_in_module_constants_are_resolved() -> None:
    found = reads("m.py", """
        import os
        _FLAG = "VLLM_X"
        _PREFIX = "VLLM_MINIMAX_"
        _JOINED = _PREFIX + "JOINED"
        _FORMATTED = f"{_PREFIX}FORMATTED"
        a = os.environ.get(_FLAG, "0")
        b = os.environ.get(_JOINED, "0") == "1"
        c = os.getenv(_FORMATTED)
        def local():
            name = "VLLM_LOCAL"
            return os.getenv(name, "1")
    """)
    assert [summary(r) for r in found] == [
        ("VLLM_X", 6, "0", Idiom.STRING, None, False),
        ("VLLM_MINIMAX_JOINED", 7, "0", Idiom.EQUALS, "1", False),
        ("VLLM_MINIMAX_FORMATTED", 8, None, Idiom.STRING, None, None),
        ("VLLM_LOCAL", 11, "1", Idiom.STRING, None, True),
    ]
    assert not any(r.dynamic for r in found)


def test_python_names_from_parameters_loops_and_fstrings_are_dynamic_not_dropped() -> None:
    found = reads("m.py", """
        import os
        def read(name):
            return os.environ.get(name)
        for var in ("A", "B"):
            os.getenv(var, "0")
        def fmt(suffix):
            return os.getenv(f"VLLM_{suffix}")
        _TWICE = "A"
        _TWICE = "B"
        os.getenv(_TWICE)
    """)
    assert [(r.name, r.line, r.dynamic, r.expression) for r in found] == [
        (DYNAMIC, 3, True, "os.environ.get(name)"),
        (DYNAMIC, 5, True, 'os.getenv(var, "0")'),
        (DYNAMIC, 7, True, 'os.getenv(f"VLLM_{suffix}")'),
        (DYNAMIC, 10, True, "os.getenv(_TWICE)"),
    ]
    assert found[1].default == "0"


def test_python_aliases_of_environ_and_getenv() -> None:
    found = reads("m.py", """
        import os.path
        from os import environ as E
        read = os.getenv
        env = os.environ
        child = os.environ.copy()
        child["VLLM_CHILD"] = "1"
        a = E.get("VLLM_A", "0")
        b = read("VLLM_B", "1")
        c = env["VLLM_C"]
        os.environ.update({"VLLM_U": "1"}, VLLM_K="0")
        os.putenv("VLLM_P", "1")
    """)
    assert [summary(r) for r in found] == [
        ("VLLM_CHILD", 6, "1", Idiom.SET, None, True),
        ("VLLM_A", 7, "0", Idiom.STRING, None, False),
        ("VLLM_B", 8, "1", Idiom.STRING, None, True),
        ("VLLM_C", 9, None, Idiom.STRING, None, None),
        ("VLLM_U", 10, "1", Idiom.SET, None, True),
        ("VLLM_K", 10, "0", Idiom.SET, None, False),
        ("VLLM_P", 11, "1", Idiom.SET, None, True),
    ]


def test_python_accessor_functions_make_their_calls_reads() -> None:
    found = reads("m.py", """
        import os
        def _env_flag(name, default="0"):
            return os.environ.get(name, default) == "1"
        class Runner:
            def _int(self, name, default=4):
                return int(os.getenv(name, default))
            def run(self):
                return self._int("VLLM_MINIMAX_TOKENS")
        if _env_flag("VLLM_MINIMAX_W"):
            pass
        fast = _env_flag("VLLM_MINIMAX_FAST", "1")
    """)
    assert [summary(r) for r in found if not r.dynamic] == [
        ("VLLM_MINIMAX_TOKENS", 8, "4", Idiom.INT, None, None),
        ("VLLM_MINIMAX_W", 9, "0", Idiom.EQUALS, "1", False),
        ("VLLM_MINIMAX_FAST", 11, "1", Idiom.EQUALS, "1", True),
    ]
    assert [r.line for r in found if r.dynamic] == [3, 6]


def test_python_look_alikes_are_not_reads() -> None:
    found = reads("m.py", '''
        """Module docstring: os.environ.get("DOC_FLAG", "0") == "1" is documentation."""
        import os
        # os.getenv("COMMENT_FLAG")
        MESSAGE = 'set os.environ["STRING_FLAG"] to enable'
        some_dict = {"DICT_FLAG": "1"}
        some_dict.get("DICT_FLAG", "0")
        os.path.getsize("x")
        os.path.join("a", "b")
        class Config:
            def get(self, key, default=None):
                return default
        Config().get("OBJ_FLAG", "0")
        def shadow():
            environ = {"LOCAL": "1"}
            return environ.get("LOCAL_ENVIRON", "0")
        def param(environ):
            return environ["PARAM_ENVIRON"]
        getenv = lambda key, default=None: default
        getenv("LAMBDA_GETENV")
        for key in os.environ:
            pass
        copy = dict(os.environ.items())
    ''')
    assert found == []


def test_python_module_level_environ_that_is_not_os_environ_is_not_read() -> None:
    assert reads("m.py", """
        environ = {"X": "1"}
        environ.get("NOT_OS", "0")
    """) == []


def test_vllm_envs_registry_entries_are_named_by_key_with_the_inner_default() -> None:
    found = reads("vllm/envs.py", """
        import os
        from typing import Any, Callable

        def env_with_choices(env_name, default, choices):
            def _get():
                value = os.getenv(env_name)
                return default if value is None else value
            return _get

        def env_bool(env_name: str, default: bool = False):
            return lambda: os.getenv(env_name, "1" if default else "0").strip().lower() in ("1", "true")

        environment_variables: dict[str, Callable[[], Any]] = {
            # comment with "VLLM_COMMENTED": lambda: os.getenv("VLLM_COMMENTED")
            "VLLM_X": lambda: bool(int(os.getenv("VLLM_X", "0"))),
            "VLLM_ON":
            lambda: bool(int(os.getenv("VLLM_ON", "1"))),
            "VLLM_TARGET": lambda: os.getenv("VLLM_TARGET", "cuda").lower(),
            "VLLM_LAYOUT": env_with_choices("VLLM_LAYOUT", "auto", ["auto", "nhd"]),
            "VLLM_FLAG": env_bool("VLLM_FLAG"),
            "VLLM_DEFAULT_ON": env_bool("VLLM_DEFAULT_ON", True),
            "NUM_SLICES": lambda: int(os.getenv("NUM_SLICES") or "1"),
        }
    """)
    registry = [r for r in found if r.idiom is Idiom.REGISTRY]
    assert [summary(r) for r in registry] == [
        ("VLLM_X", 15, "0", Idiom.REGISTRY, None, False),
        ("VLLM_ON", 16, "1", Idiom.REGISTRY, None, True),
        ("VLLM_TARGET", 18, "cuda", Idiom.REGISTRY, None, None),
        ("VLLM_LAYOUT", 19, "auto", Idiom.REGISTRY, None, None),
        ("VLLM_FLAG", 20, "0", Idiom.REGISTRY, "1|true", False),
        ("VLLM_DEFAULT_ON", 21, "1", Idiom.REGISTRY, "1|true", True),
        ("NUM_SLICES", 22, "1", Idiom.REGISTRY, None, True),
    ]
    # each variable once: the read inside an entry is folded into the entry; the helpers' own reads stay dynamic
    assert [r.name for r in found if r.idiom is not Idiom.REGISTRY] == [DYNAMIC, DYNAMIC]
    assert registry[0].expression == '"VLLM_X": lambda: bool(int(os.getenv("VLLM_X", "0")))'


@pytest.mark.parametrize("imports", ["from vllm import envs", "import vllm.envs as envs"])
def test_vllm_envs_attribute_uses_are_registry_reads(imports: str) -> None:
    found = reads("vllm/worker.py", f"""
        {imports}
        if envs.VLLM_XPU_USE_LLM_SCALER_MOE_WS:
            pass
        backend = envs.VLLM_ATTENTION_BACKEND == "FLASH"
        envs.environment_variables
        envs.compute_hash()
    """)
    assert [summary(r) for r in found] == [
        ("VLLM_XPU_USE_LLM_SCALER_MOE_WS", 2, None, Idiom.REGISTRY, None, None),
        ("VLLM_ATTENTION_BACKEND", 4, None, Idiom.REGISTRY, "FLASH", None),
    ]


def test_vllm_envs_is_set_and_imported_values() -> None:
    found = reads("vllm/worker.py", """
        from vllm import envs
        from vllm.envs import VLLM_IMPORTED
        if envs.is_set("VLLM_ISSET"):
            pass
        if VLLM_IMPORTED:
            pass
    """)
    assert [summary(r) for r in found] == [
        ("VLLM_ISSET", 3, None, Idiom.PRESENCE, None, False),
        ("VLLM_IMPORTED", 5, None, Idiom.REGISTRY, None, None),
    ]


def test_an_unrelated_envs_module_attribute_is_not_a_read() -> None:
    assert reads("m.py", """
        import mylib.envs as envs
        x = envs.SOMETHING
    """) == []


def test_broken_python_still_yields_the_obvious_reads() -> None:
    found = reads("broken.py", '''
        import os
        _NAME = "VLLM_CONST"
        def f(:
            x = os.environ.get("BROKEN_A", "0") == "1"
            if int(os.getenv("BROKEN_B", "4")) > 2
                pass
        print "py2"; y = os.environ.get(_NAME, "1")
        """docstring: os.getenv("DOC_FLAG")"""
        # os.getenv("COMMENT_FLAG")
        z = "é"; w = os.environ.get("BROKEN_C", "0").lower() in ("1", "true") +
    ''')
    assert [summary(r) for r in found] == [
        ("BROKEN_A", 4, "0", Idiom.EQUALS, "1", False),
        ("BROKEN_B", 5, "4", Idiom.INT, "2", True),
        ("VLLM_CONST", 7, "1", Idiom.STRING, None, True),
        ("BROKEN_C", 10, "0", Idiom.EQUALS, "1|true", False),
    ]
    assert found[-1].expression == 'os.environ.get("BROKEN_C", "0").lower() in ("1", "true")'


@pytest.mark.parametrize(("code", "default", "idiom"), [
    ('A = int(float(os.getenv("X_N", "inf")))', "inf", Idiom.FLOAT),
    ('A = int(float(os.getenv("X_N", "nan")))', "nan", Idiom.FLOAT),
    ('A = int(os.getenv("X_N", 1e999))', "inf", Idiom.INT),
])
def test_int_of_an_infinite_or_nan_default_is_unknown_not_a_crash(code: str, default: str, idiom: FlagIdiom) -> None:
    read = only("a.py", "import os\n" + code + "\n")
    assert (read.name, read.default, read.idiom, read.default_on) == ("X_N", default, idiom, None)


def test_windows_line_endings_keep_line_numbers() -> None:
    read = only("m.py", 'import os\r\nx = 1\r\ny = os.getenv("VLLM_CRLF", "0") == "1"\r\n')
    assert summary(read) == ("VLLM_CRLF", 3, "0", Idiom.EQUALS, "1", False)


# ---------------------------------------------------------------------------------------------------- C / C++

C_SOURCE = r'''
#include <cstdlib>
#define SCALER_FLAG "LLM_SCALER_MACRO"
// getenv("COMMENT_FLAG")
/* std::getenv("BLOCK_FLAG") */
static const char* kName = "LLM_SCALER_CONST";
const char* msg = "getenv(\"STRING_FLAG\")";
char *getenv(const char *name);
static bool use_ws = std::getenv("LLM_SCALER_MOE_WS") != nullptr;
void f(const char* name_var) {
    const char* v = getenv("LLM_SCALER_CHUNK");
    int n = v ? atoi(v) : 4;
    const char* w = ::getenv("LLM_SCALER_GUARD");
    if (w && atoi(w)) {}
    if (getenv("GGML_SYCL_DISABLE_OPT")) {}
    auto s = secure_getenv("LLM_SCALER_SECURE");
    int m = std::atoi(std::getenv("LLM_SCALER_ATOI"));
    const char* p = getenv(SCALER_FLAG);
    const char* q = getenv(kName);
    const char* r = getenv(name_var);
    if (!getenv("LLM_SCALER_NEG")) {}
    if (strcmp(getenv("LLM_SCALER_CMP"), "1") == 0) {}
    if (std::string(getenv("LLM_SCALER_STR")) == "on") {}
    setenv("LLM_SCALER_SET", "1", 1);
    int k = getenv("LLM_SCALER_TERN") ? atoi(getenv("LLM_SCALER_TERN")) : 0;
    my_getenv("NOT_STD");
    cfg.getenv("NOT_FREE");
}
'''


def test_c_reads_every_idiom() -> None:
    found = read_flag_reads("csrc/xpu/moe.cpp", source(C_SOURCE))
    assert [summary(r) for r in found] == [
        ("LLM_SCALER_MOE_WS", 8, None, Idiom.TRUTHY, None, False),
        ("LLM_SCALER_CHUNK", 10, "4", Idiom.INT, None, None),
        ("LLM_SCALER_GUARD", 12, None, Idiom.INT, None, False),
        ("GGML_SYCL_DISABLE_OPT", 14, None, Idiom.TRUTHY, None, False),
        ("LLM_SCALER_SECURE", 15, None, Idiom.STRING, None, None),
        ("LLM_SCALER_ATOI", 16, None, Idiom.INT, None, None),
        ("LLM_SCALER_MACRO", 17, None, Idiom.STRING, None, None),
        ("LLM_SCALER_CONST", 18, None, Idiom.STRING, None, None),
        (DYNAMIC, 19, None, Idiom.STRING, None, None),
        ("LLM_SCALER_NEG", 20, None, Idiom.TRUTHY, None, True),
        ("LLM_SCALER_CMP", 21, None, Idiom.EQUALS, "1", False),
        ("LLM_SCALER_STR", 22, None, Idiom.EQUALS, "on", False),
        ("LLM_SCALER_SET", 23, "1", Idiom.SET, None, True),
        ("LLM_SCALER_TERN", 24, "0", Idiom.INT, None, False),
    ]
    assert found[0].expression == 'std::getenv("LLM_SCALER_MOE_WS") != nullptr'
    assert found[8].dynamic and found[8].expression == "const char* r = getenv(name_var);"
    assert all(r.language == "c" for r in found)


def test_c_llama_cpp_sycl_accessor_calls_are_reads() -> None:
    found = read_flag_reads("ggml/src/ggml-sycl/ggml-sycl.cpp", source("""
        static int get_sycl_env(const char *env_name, int default_val) {
            char *user_device_string = getenv(env_name);
            int user_number = default_val;
            unsigned n;
            if (user_device_string != NULL && sscanf(user_device_string, " %u", &n) == 1) {
                user_number = (int)n;
            }
            return user_number;
        }
        static void ggml_check_sycl() {
            g_ggml_sycl_disable_optimize = get_sycl_env("GGML_SYCL_DISABLE_OPT", 0);
            g_ggml_sycl_disable_graph = get_sycl_env("GGML_SYCL_DISABLE_GRAPH", 1);
            static int max_ne = get_sycl_env("GGML_SYCL_GRAPH_MUL_MAT_MAX_NE", -1);
        }
    """))
    assert [summary(r) for r in found] == [
        (DYNAMIC, 2, None, Idiom.INT, None, None),
        ("GGML_SYCL_DISABLE_OPT", 11, "0", Idiom.INT, None, False),
        ("GGML_SYCL_DISABLE_GRAPH", 12, "1", Idiom.INT, None, True),
        ("GGML_SYCL_GRAPH_MUL_MAT_MAX_NE", 13, "-1", Idiom.INT, None, None),
    ]


def test_c_look_alikes_are_not_reads() -> None:
    assert read_flag_reads("a.cc", source(r'''
        // const char* v = getenv("LINE_COMMENT");
        /* if (std::getenv("BLOCK_COMMENT")) {} */
        const char* help = "set getenv(\"IN_STRING\") to enable";
        const char* raw = R"(getenv("IN_RAW_STRING"))";
        char *getenv(const char *name);
        int x = my_getenv("WRAPPER_NAME") + obj.getenv("METHOD") + ptr->getenv("ARROW");
        int digits = 1'000'000;
    ''')) == []


# ---------------------------------------------------------------------------------------------------- shell

SHELL_SOURCE = r"""
#!/bin/bash
# export COMMENTED=1 and ${COMMENT_VAR:-1}
export VLLM_XPU_USE_LLM_SCALER_MOE_WS=1
VLLM_PREFIX=1 VLLM_OTHER="a b" python -m vllm.entrypoints.api_server
MODEL=${MODEL:-/models/minimax}
: "${VLLM_COLON:=1}"
echo $HOME $PATH $PWD $1 $@ $? $# $$ ${LC_ALL}
echo "$UPPER_READ" '$SINGLE_QUOTED ${SINGLE_DEFAULT:-1}'
if [ "${VLLM_EQ:-0}" = "1" ]; then echo on; fi
if [[ ${VLLM_INT:-0} -eq 1 ]]; then echo on; fi
if [ -n "${VLLM_N:-}" ]; then echo on; fi
local_var=1
echo $local_var ${local_var}
LOCAL_UP=2
echo $LOCAL_UP
echo ${TP:+--tp $TP}
env A_ENV=1 B_ENV=0 cmd
echo ${DEF_DASH-x} ${DEF_EQ:=3} \$ESCAPED
"""


def test_shell_reads_and_sets() -> None:
    found = read_flag_reads("scripts/run.sh", source(SHELL_SOURCE))
    assert [summary(r) for r in found] == [
        ("VLLM_XPU_USE_LLM_SCALER_MOE_WS", 3, "1", Idiom.SET, None, True),
        ("VLLM_PREFIX", 4, "1", Idiom.SET, None, True),
        ("VLLM_OTHER", 4, "a b", Idiom.SET, None, None),
        ("MODEL", 5, "/models/minimax", Idiom.STRING, None, None),
        ("VLLM_COLON", 6, "1", Idiom.SET, None, True),
        ("UPPER_READ", 8, None, Idiom.STRING, None, None),
        ("VLLM_EQ", 9, "0", Idiom.EQUALS, "1", False),
        ("VLLM_INT", 10, "0", Idiom.INT, "1", False),
        ("VLLM_N", 11, "", Idiom.TRUTHY, None, False),
        ("TP", 16, None, Idiom.PRESENCE, None, False),
        ("A_ENV", 17, "1", Idiom.SET, None, True),
        ("B_ENV", 17, "0", Idiom.SET, None, False),
        ("DEF_DASH", 18, "x", Idiom.STRING, None, None),
        ("DEF_EQ", 18, "3", Idiom.STRING, None, None),
    ]
    assert found[6].expression == '"${VLLM_EQ:-0}" = "1"'
    assert all(r.language == "shell" for r in found)


def test_shell_heredocs_expand_unless_quoted() -> None:
    found = read_flag_reads("run.sh", source("""
        cat <<EOF
        $HEREDOC_READ
        EOF
        cat <<'EOF'
        $HEREDOC_LITERAL ${HEREDOC_DEFAULT:-1}
        EOF
        echo ${AFTER:-0}
    """))
    assert [(r.name, r.line) for r in found] == [("HEREDOC_READ", 2), ("AFTER", 7)]


def test_dotenv_assignments_are_sets() -> None:
    found = read_flag_reads("deploy/prod.env", "VLLM_A=1\nexport VLLM_B=0\n# VLLM_C=1\nVLLM_D='on'\n")
    assert [summary(r) for r in found] == [
        ("VLLM_A", 1, "1", Idiom.SET, None, True),
        ("VLLM_B", 2, "0", Idiom.SET, None, False),
        ("VLLM_D", 4, "on", Idiom.SET, None, True),
    ]


def test_shell_plain_assignment_is_a_set_only_when_exported() -> None:
    found = read_flag_reads("run.sh", "VLLM_LATER=1\nVLLM_LOCAL=1\nexport VLLM_LATER\n")
    assert [summary(r) for r in found] == [("VLLM_LATER", 1, "1", Idiom.SET, None, True)]


def test_extensionless_script_is_read_by_its_shebang() -> None:
    read = only("scripts/bench", "#!/usr/bin/env bash\n[ \"${VLLM_X:-0}\" = \"1\" ] && echo on\n")
    assert summary(read) == ("VLLM_X", 2, "0", Idiom.EQUALS, "1", False)


# ---------------------------------------------------------------------------------------------------- CMake

def test_cmake_reads() -> None:
    found = read_flag_reads("CMakeLists.txt", source("""
        # $ENV{COMMENTED} and DEFINED ENV{COMMENTED}
        if(DEFINED ENV{ONEAPI_ROOT})
        endif()
        if(NOT DEFINED ENV{VLLM_TARGET_DEVICE})
        endif()
        set(ENV{SYCL_CACHE_PERSISTENT} 1)
        message(STATUS "root: $ENV{ONEAPI_ROOT}")
        if("$ENV{GGML_SYCL_F16}" STREQUAL "ON")
        endif()
        if($ENV{VLLM_CM_TRUTHY})
        endif()
        set(bracket [[ $ENV{IN_BRACKET} ]])
        #[[ $ENV{IN_BRACKET_COMMENT} ]]
        set(y $ENV{${computed}})
    """))
    assert [summary(r) for r in found] == [
        ("ONEAPI_ROOT", 2, None, Idiom.PRESENCE, None, False),
        ("VLLM_TARGET_DEVICE", 4, None, Idiom.PRESENCE, None, True),
        ("SYCL_CACHE_PERSISTENT", 6, "1", Idiom.SET, None, True),
        ("ONEAPI_ROOT", 7, None, Idiom.STRING, None, None),
        ("GGML_SYCL_F16", 8, None, Idiom.EQUALS, "ON", False),
        ("VLLM_CM_TRUTHY", 10, None, Idiom.TRUTHY, None, False),
        (DYNAMIC, 14, None, Idiom.STRING, None, None),
    ]
    assert found[-1].dynamic and found[-1].expression == "$ENV{${computed}}"


# ---------------------------------------------------------------------------------------------------- changed lines

SPLIT_CALL = """\
import os
BEFORE = os.getenv("VLLM_BEFORE")
USE_X = os.environ.get(
    "VLLM_MINIMAX_SPLIT",
    "0",
) == "1"
AFTER = os.getenv("VLLM_AFTER")
"""


def test_reads_in_lines_keeps_only_reads_on_changed_lines() -> None:
    assert [r.name for r in reads_in_lines("m.py", SPLIT_CALL, {2})] == ["VLLM_BEFORE"]
    assert [r.name for r in reads_in_lines("m.py", SPLIT_CALL, {7, 100})] == ["VLLM_AFTER"]
    assert reads_in_lines("m.py", SPLIT_CALL, {1}) == []
    assert reads_in_lines("m.py", SPLIT_CALL, set()) == []


@pytest.mark.parametrize("line", [3, 4, 5, 6])
def test_reads_in_lines_counts_a_multi_line_call_touched_on_any_of_its_lines(line: int) -> None:
    found = reads_in_lines("m.py", SPLIT_CALL, {line})
    assert [(r.name, r.line, r.removed) for r in found] == [("VLLM_MINIMAX_SPLIT", 4, False)]


def test_reads_in_lines_marks_removed_reads() -> None:
    found = reads_in_lines("m.py", SPLIT_CALL, {5}, removed=True)
    assert [(r.name, r.removed) for r in found] == [("VLLM_MINIMAX_SPLIT", True)]
    assert read_flag_reads("m.py", SPLIT_CALL)[1].removed is False


def test_reads_in_lines_for_other_languages() -> None:
    c = 'void f() {\n    int n = atoi(\n        std::getenv("LLM_SCALER_N"));\n}\n'
    assert [r.name for r in reads_in_lines("a.cpp", c, {2})] == ["LLM_SCALER_N"]
    assert reads_in_lines("a.cpp", c, {4}) == []
    sh = 'echo one\nif [ "${VLLM_X:-0}" = "1" ]; then\n  echo on\nfi\n'
    assert [r.name for r in reads_in_lines("run.sh", sh, {2})] == ["VLLM_X"]
    assert reads_in_lines("run.sh", sh, {1, 3}) == []


def test_registry_entry_counts_when_its_lambda_line_changes() -> None:
    envs = source("""
        import os
        environment_variables = {
            "VLLM_X":
            lambda: bool(int(os.getenv("VLLM_X", "0"))),
        }
    """)
    assert [r.name for r in reads_in_lines("vllm/envs.py", envs, {4})] == ["VLLM_X"]


# ---------------------------------------------------------------------------------------------------- is_default_off

def flag(idiom: FlagIdiom, default: str | None, compared_to: str | None = None,
         default_on: bool | None = None) -> FlagRead:
    return FlagRead(name="X", path="p", line=1, language="python", default=default, idiom=idiom,
                    compared_to=compared_to, default_on=default_on)


@pytest.mark.parametrize("read, off", [
    (flag(Idiom.EQUALS, "0", "1", default_on=False), True),
    (flag(Idiom.EQUALS, "1", "1", default_on=True), False),
    (flag(Idiom.STRING, "fast", default_on=None), None),
    # built by hand, without default_on: judged from idiom and default
    (flag(Idiom.EQUALS, "0", "1"), True),
    (flag(Idiom.EQUALS, "true", "1|true"), False),
    (flag(Idiom.EQUALS, None, "1"), True),
    (flag(Idiom.EQUALS, "0", None), None),
    (flag(Idiom.TRUTHY, None), True),
    (flag(Idiom.TRUTHY, "1"), False),
    (flag(Idiom.PRESENCE, None), True),
    (flag(Idiom.INT, "0"), True),
    (flag(Idiom.INT, "1"), False),
    (flag(Idiom.INT, "4"), None),
    (flag(Idiom.FLOAT, "0.0"), True),
    (flag(Idiom.SET, "1"), False),
    (flag(Idiom.SET, "off"), True),
    (flag(Idiom.REGISTRY, None), None),
])
def test_is_default_off(read: FlagRead, off: bool | None) -> None:
    assert is_default_off(read) is off


def test_is_default_off_agrees_with_extracted_reads() -> None:
    off = only("m.py", PY_HEADER + 'A = os.environ.get("VLLM_MINIMAX_X", "0") == "1"\n')
    on = only("m.py", PY_HEADER + 'A = os.environ.get("VLLM_MINIMAX_X", "1") == "1"\n')
    assert (is_default_off(off), is_default_off(on)) == (True, False)


# ---------------------------------------------------------------------------------------------------- robustness

FRAGMENTS = st.sampled_from([
    'os.environ.get(', 'os.getenv(', '"VLLM_X"', "'Y'", "(", ")", "[", "]", "{", "}", ",", " == ", " in ", '"1"',
    "\n", "    ", "#", '"""', "'''", "\\", "getenv(", "std::getenv(", "/*", "*/", "//", "${", "$", ":-", "<<",
    "EOF", "'", '"', "`", "$(", "export ", "=", ";", "&&", "$ENV{", "DEFINED ENV{", "set(ENV{", "[[", "]]",
    "int(", "not ", "if ", ":", "lambda: ", "envs.VLLM_X", "from os import environ\n", "def f(n):\n",
    "return os.environ[n]\n", "x = f('Z')\n", "elif ", "@d\n", 'R"(', ')"', "\r", "\x00", "é"])
ARBITRARY_TEXT = st.one_of(st.text(max_size=200), st.lists(FRAGMENTS, max_size=40).map("".join))


@pytest.mark.parametrize("path", ["m.py", "k.cpp", "run.sh", "CMakeLists.txt"])
@settings(max_examples=200, deadline=None)
@given(text=ARBITRARY_TEXT, lines=st.sets(st.integers(min_value=0, max_value=30), max_size=5))
def test_never_raises_on_arbitrary_text(path: str, text: str, lines: set[int]) -> None:
    found = read_flag_reads(path, text)
    assert all(isinstance(r, FlagRead) and r.line >= 1 for r in found)
    assert all(r.name == DYNAMIC or r.name for r in found)
    touched = reads_in_lines(path, text, lines, removed=True)
    assert all(r.removed for r in touched) and len(touched) <= len(found)
