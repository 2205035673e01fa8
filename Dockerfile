# The frontend image (and, without DDX_STT_TRITON_URL, the embedded CPU Triton as well).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY frontend ./frontend
COPY schemas ./schemas
COPY models ./models
COPY model_repository/templates ./model_repository/templates
COPY scripts ./scripts
RUN pip install --no-cache-dir -e .
EXPOSE 4600
ENTRYPOINT ["ddx-stt", "serve"]
CMD ["--host", "0.0.0.0", "--port", "4600"]
