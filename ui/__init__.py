"""The Gradio chat. It renders Answers and never touches Chroma."""
