"""The Streamlit script: `streamlit run ops_dashboard/app.py` (or `pq-dashboard`)."""

from ops_dashboard.page import render

render()
