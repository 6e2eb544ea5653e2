/* tracker: see issue 8 */
