"""The scorer's optional C speed-up (see proxy/detect/native.py); everything else is in
pyproject.toml. Without a C compiler the wheel is built without it and the same sums are made
in Python. (setup.py because pyproject's ext-modules table is still experimental in setuptools.)
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("proxy.detect._sums", ["proxy/detect/_sums.c"], optional=True)])
