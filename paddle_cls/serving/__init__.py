"""Serving an exported model over HTTP: `paddle-cls serve` (see app.py); needs `pip install 'paddle_cls[serve]'`."""
