"""The Streamlit operations dashboard."""
