# Builds the portal directory the server serves at /portal/ (run by the `portal` target):
#   cmake -DSRC=<repo>/web -DOUT=<build>/portal -DNPM_DIR=<build>/portal-npm -P build_portal.cmake
# The page's own files are copied as they are (plain ES modules, no bundler); the npm packages
# it uses come from the registry through the committed package-lock.json, installed only when
# the lockfile changed and preferring npm's local cache, so a rebuild needs no network. Without
# npm (or offline with an empty cache) the portal still works; only the deep-zoom viewer is
# missing, and the image page says so.
file(REMOVE_RECURSE ${OUT})
file(COPY ${SRC}/portal/ DESTINATION ${OUT})

file(MAKE_DIRECTORY ${NPM_DIR})
foreach(f package.json package-lock.json)
  configure_file(${SRC}/${f} ${NPM_DIR}/${f} COPYONLY)
endforeach()
find_program(NPM npm)
set(stamp ${NPM_DIR}/node_modules/.package-lock.json)
if(NPM AND (NOT EXISTS ${stamp} OR ${SRC}/package-lock.json IS_NEWER_THAN ${stamp}))
  execute_process(COMMAND ${NPM} ci --prefer-offline --no-audit --no-fund
                  WORKING_DIRECTORY ${NPM_DIR} RESULT_VARIABLE rc OUTPUT_QUIET)
  if(NOT rc EQUAL 0)
    message(WARNING "portal: npm ci failed (${rc}); the image page will have no deep-zoom viewer")
  endif()
elseif(NOT NPM)
  message(WARNING "portal: npm not found; the image page will have no deep-zoom viewer")
endif()
set(osd ${NPM_DIR}/node_modules/openseadragon/build/openseadragon)
if(EXISTS ${osd}/openseadragon.min.js)
  file(COPY ${osd}/openseadragon.min.js ${osd}/images DESTINATION ${OUT}/vendor/openseadragon)
  file(COPY ${NPM_DIR}/node_modules/openseadragon/LICENSE.txt
       DESTINATION ${OUT}/vendor/openseadragon)
endif()
