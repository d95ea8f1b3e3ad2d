# TEST STAND-IN for hashicorp/http-echo:1.0 (tests/container_path/standins.sh). Never push.
FROM python:3.11-slim
COPY http-echo.py /http-echo.py
ENTRYPOINT ["python", "/http-echo.py"]
