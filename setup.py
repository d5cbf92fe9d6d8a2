"""Build of the native parser (exporter/parser/_native.c); everything else is in pyproject.toml."""
from setuptools import Extension, setup

setup(ext_modules=[Extension("exporter.parser._native", ["exporter/parser/_native.c"],
                             extra_compile_args=["-O2", "-std=gnu11", "-Wall"])])
