from sewamitra.cli import main

main()
