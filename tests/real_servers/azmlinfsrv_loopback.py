"""`azmlinfsrv` bound to 127.0.0.1 (run with the Azure ML venv's python, same arguments as azmlinfsrv).

azureml-inference-server-http 1.5.1 passes constants.DEFAULT_HOST ("0.0.0.0") to gunicorn and has no host
option; this runs its own entry point (amlserver.run, what the `azmlinfsrv` command calls) with that host
set to 127.0.0.1, so the tests' server is reachable from this machine only.
"""

import sys

from azureml_inference_server_http import amlserver

amlserver.DEFAULT_HOST = "127.0.0.1"
sys.argv[0] = "azmlinfsrv"
amlserver.run()
