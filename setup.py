from setuptools import setup; setup(cffi_modules=["native/ext/build_native.py:ffibuilder"])
