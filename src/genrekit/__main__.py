from genrekit.apps.cli import main

main()
