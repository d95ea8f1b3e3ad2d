# TEST STAND-IN for python:3.11-slim (tests/container_path/standins.sh). Never push.
FROM turnout-standin/debian:bookworm
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-venv passwd \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /usr/local
ENV PATH=/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
CMD ["python3"]
