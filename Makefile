# Set-up, checks and demo for sar-codec on Debian 12.  `make help` lists the targets.
#
# The environment is a venv on Debian's /usr/bin/python3 that also sees the system site-packages,
# so that QGIS (python3-qgis), GDAL (python3-gdal) and numpy come from Debian, and rasterio is
# built from source against Debian's libgdal: inside QGIS, QGIS and sar_codec then share one GDAL.

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help
.DELETE_ON_ERROR:

SYSTEM_PYTHON := /usr/bin/python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
# Pins that keep the venv on Debian's numpy, written at set-up time (see $(STAMP)).
SYSTEM_PINS := $(VENV)/system-pins.txt

# QGIS and GDAL with their bindings for /usr/bin/python3; GDAL headers and a compiler to build
# rasterio; venv support; Xvfb for tests that need a display.
APT_PACKAGES := qgis python3-qgis gdal-bin python3-gdal libgdal-dev python3-dev python3-venv \
                build-essential xvfb xauth
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
# Extra apt-get install flags, e.g. `make setup APT_INSTALL_FLAGS=-s` to simulate.
APT_INSTALL_FLAGS ?=

# Versions are written once, in pyproject.toml; read the pins needed before `pip install -e .`.
TORCH_PINS := $(shell sed -n 's/^ *"\(torch\(vision\)\{0,1\}==[^"]*\)".*/\1/p' pyproject.toml)
RASTERIO_REQS := $(shell sed -n 's/^ *"\(\(rasterio\|affine\)[<>=~!][^"]*\)".*/"\1"/p' pyproject.toml)

# Builds share the machine: run them niced.  Rasterio is never taken as a wheel (bundled GDAL).
PIP_INSTALL := nice -n 10 $(PY) -m pip install --disable-pip-version-check --no-binary rasterio \
               -c $(SYSTEM_PINS)

PYTEST_ARGS ?= -q -ra --strict-markers --timeout=900

export QT_QPA_PLATFORM := offscreen

.PHONY: help setup system-packages check-gdal test lint demo clean

help:
	@echo "make demo    set up, then compress and decompress a synthetic sample into out/"
	@echo "make test    set up, then lint (ruff) and run the test suite (pytest)"
	@echo "make setup   install Debian packages if missing and build .venv (quick when done)"
	@echo "make lint    ruff check"
	@echo "make clean   remove .venv, out/ and caches"

setup: system-packages $(STAMP)

# Installs only what dpkg reports missing, so a second run costs a few dpkg queries.
system-packages:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' "$$p" 2>/dev/null | grep -qx 'install ok installed' || echo "$$p"; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y $(APT_INSTALL_FLAGS) $$missing; \
	fi

$(STAMP): pyproject.toml Makefile | system-packages
	test -x $(PY) || $(SYSTEM_PYTHON) -m venv --system-site-packages $(VENV)
	$(SYSTEM_PYTHON) -c 'import numpy; print(f"numpy=={numpy.__version__}")' > $(SYSTEM_PINS)
	$(PIP_INSTALL) $(TORCH_PINS)
	$(PIP_INSTALL) $(RASTERIO_REQS)
	$(PIP_INSTALL) -e ".[test]"
	$(MAKE) --no-print-directory check-gdal
	touch $@

# QGIS's Python (/usr/bin/python3) with the venv on sys.path, as the QGIS plugin runs:
# rasterio must load the same libgdal as QGIS.
check-gdal:
	$(SYSTEM_PYTHON) -c 'import glob, sys; \
	sys.path[:0] = glob.glob("$(abspath $(VENV))/lib/python3*/site-packages"); \
	from qgis.core import QgsApplication; import rasterio; from osgeo import gdal; \
	assert rasterio.__gdal_version__ == gdal.__version__, \
	  f"rasterio uses GDAL {rasterio.__gdal_version__} but QGIS uses {gdal.__version__}: run make clean setup"; \
	print(f"QGIS and rasterio {rasterio.__version__} share GDAL {gdal.__version__}")'

lint: setup
	$(VENV)/bin/ruff check .

# Both checks run even when one fails, so CI reports both; the target fails if either does
# (pytest's exit status 5, "no tests collected", included).
test: setup
	@status=0; \
	echo "$(VENV)/bin/ruff check ."; $(VENV)/bin/ruff check . || status=$$?; \
	echo "$(PY) -m pytest $(PYTEST_ARGS)"; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; \
	exit $$status

# The CLI refuses to overwrite, so a re-run starts from an empty set of demo outputs.
demo: setup
	mkdir -p out
	rm -f out/sample.tif out/sample.sarc out/sample_decoded.tif
	$(VENV)/bin/sar-codec sample out/sample.tif
	$(VENV)/bin/sar-codec compress out/sample.tif -o out/sample.sarc
	$(VENV)/bin/sar-codec info out/sample.sarc
	$(VENV)/bin/sar-codec decompress out/sample.sarc -o out/sample_decoded.tif

clean:
	rm -rf $(VENV) out build dist .pytest_cache .ruff_cache .hypothesis
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
	find . -maxdepth 2 -name '*.egg-info' -type d -prune -exec rm -rf {} +
