from solo_coplugin.bench.runner import main

main()
