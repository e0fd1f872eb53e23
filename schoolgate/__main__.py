from schoolgate.cli import app

app()
