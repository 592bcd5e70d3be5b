from bbpatch.cli import main

main()
